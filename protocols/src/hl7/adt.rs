//! The ADT view: what the association state machine needs from an ADT message.
//!
//! ```text
//! MSH-9   message type ^ trigger event ^ structure      (EVN-1 when MSH-9.2 is empty, v2.3)
//! MSH-10  message control id (echoed in MSA-2)          MSH-12 version: 2.3, 2.3.1, 2.4, 2.5, 2.5.1, 2.6
//! EVN-2   recorded date/time                            EVN-6 event occurred
//! PID-3   patient identifier list (CX, repeating)       PID-5 patient name (XPN)
//! PV1-2   patient class  PV1-3 assigned location (PL)   PV1-6 prior location (PL)  PV1-19 visit number (CX)
//! MRG-1   prior patient identifier list (A40)
//! A17:    MSH EVN PID PV1 PID PV1 (two patients exchanging beds)
//! ```
//! Each PID starts a patient; the PV1 and MRG after it belong to that patient.

use alloc::string::String;
use alloc::vec::Vec;

use super::datatypes::{parse_ts, Cx, Pl, Xpn};
use super::message::{Message, Segment};
use super::Hl7Error;
use crate::time::DeviceTime;

/// The ADT trigger events medgw acts on (HL7 table 0003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum AdtEvent {
    /// Admit/visit notification.
    A01,
    /// Transfer.
    A02,
    /// Discharge/end visit.
    A03,
    /// Register a patient.
    A04,
    /// Update patient information.
    A08,
    /// Cancel admit/visit (cancels A01 and A04).
    A11,
    /// Cancel transfer.
    A12,
    /// Cancel discharge.
    A13,
    /// Swap patients.
    A17,
    /// Merge patient identifier list.
    A40,
}

impl AdtEvent {
    pub fn from_code(code: &str) -> Option<AdtEvent> {
        Some(match code {
            "A01" => AdtEvent::A01,
            "A02" => AdtEvent::A02,
            "A03" => AdtEvent::A03,
            "A04" => AdtEvent::A04,
            "A08" => AdtEvent::A08,
            "A11" => AdtEvent::A11,
            "A12" => AdtEvent::A12,
            "A13" => AdtEvent::A13,
            "A17" => AdtEvent::A17,
            "A40" => AdtEvent::A40,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            AdtEvent::A01 => "A01",
            AdtEvent::A02 => "A02",
            AdtEvent::A03 => "A03",
            AdtEvent::A04 => "A04",
            AdtEvent::A08 => "A08",
            AdtEvent::A11 => "A11",
            AdtEvent::A12 => "A12",
            AdtEvent::A13 => "A13",
            AdtEvent::A17 => "A17",
            AdtEvent::A40 => "A40",
        }
    }
}

/// The HL7 versions accepted (MSH-12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Version {
    V2_3,
    V2_3_1,
    V2_4,
    V2_5,
    V2_5_1,
    V2_6,
}

impl Version {
    pub fn from_code(code: &str) -> Option<Version> {
        Some(match code {
            "2.3" => Version::V2_3,
            "2.3.1" => Version::V2_3_1,
            "2.4" => Version::V2_4,
            "2.5" => Version::V2_5,
            "2.5.1" => Version::V2_5_1,
            "2.6" => Version::V2_6,
            _ => return None,
        })
    }

    /// Whether ERR carries ERR-2 location / ERR-3 code (v2.5+) rather than ERR-1 ELD.
    pub fn has_err_v25(self) -> bool {
        self >= Version::V2_5
    }
}

/// MSH as the ACK needs it. Read even when the rest of the message is refused, so that the
/// refusal can name the message it refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub delimiters: super::Delimiters,
    /// MSH-3..MSH-6 as on the wire (still escaped), swapped into the ACK's MSH.
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
    pub message_time: Option<DeviceTime>,
    /// MSH-9.1, e.g. `ADT`.
    pub message_type: String,
    /// MSH-9.2, e.g. `A01`.
    pub trigger: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-11.1: P production, D debugging, T training.
    pub processing_id: String,
    /// MSH-12.1 as written.
    pub version: String,
}

impl Header {
    pub fn read(message: &Message<'_>) -> Result<Header, Hl7Error> {
        let msh = message.segment("MSH").ok_or(Hl7Error::MissingMsh)?;
        let raw = |n: usize| String::from(msh.field(n).raw());
        let text =
            |n: usize, c: usize| msh.field(n).component(c).text().map_err(|_| Hl7Error::BadEscape { segment: "MSH", field: n as u16 });
        Ok(Header {
            delimiters: message.delimiters(),
            sending_application: raw(3),
            sending_facility: raw(4),
            receiving_application: raw(5),
            receiving_facility: raw(6),
            message_time: parse_ts(msh.field(7).component(1).raw()).map_err(|_| Hl7Error::BadValue {
                segment: "MSH",
                field: 7,
                what: "time",
            })?,
            message_type: text(9, 1)?,
            trigger: text(9, 2)?,
            control_id: msh.field(10).text().map_err(|_| Hl7Error::BadEscape { segment: "MSH", field: 10 })?,
            processing_id: text(11, 1)?,
            version: text(12, 1)?,
        })
    }
}

/// PV1, the visit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Visit {
    /// PV1-2, table 0004: I inpatient, O outpatient, E emergency, ...
    pub class: String,
    /// PV1-3.
    pub location: Option<Pl>,
    /// PV1-6.
    pub prior_location: Option<Pl>,
    /// PV1-19.
    pub visit_number: Option<Cx>,
}

/// One PID with the PV1 and MRG that follow it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdtPatient {
    /// PID-3, every repetition with an id.
    pub ids: Vec<Cx>,
    /// PID-5, the first repetition.
    pub name: Option<Xpn>,
    pub visit: Option<Visit>,
    /// MRG-1 (A40): the identifiers merged into `ids`.
    pub merged_ids: Vec<Cx>,
}

/// A checked ADT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtMessage {
    pub header: Header,
    pub version: Version,
    pub event: AdtEvent,
    /// EVN-2.
    pub recorded: Option<DeviceTime>,
    /// EVN-6.
    pub occurred: Option<DeviceTime>,
    /// One patient; two for A17.
    pub patients: Vec<AdtPatient>,
}

impl AdtMessage {
    /// Parses bytes (UTF-8, or ISO 8859-1 when MSH-18 says so) into a checked ADT message.
    pub fn parse(bytes: &[u8]) -> Result<AdtMessage, Hl7Error> {
        let text = super::message::decode_text(bytes)?;
        let message = Message::parse(&text)?;
        AdtMessage::from_message(&message)
    }

    pub fn from_message(message: &Message<'_>) -> Result<AdtMessage, Hl7Error> {
        let header = Header::read(message)?;
        let version =
            Version::from_code(&header.version).ok_or_else(|| Hl7Error::UnsupportedVersion { version: header.version.clone() })?;
        if header.message_type != "ADT" {
            return Err(Hl7Error::UnsupportedMessageType { message_type: header.message_type.clone() });
        }
        if header.control_id.is_empty() {
            return Err(Hl7Error::MissingField { segment: "MSH", field: 10 });
        }
        let evn = message.segment("EVN");
        let evn_code = evn.map(|e| e.field(1).raw()).unwrap_or("");
        let code = if header.trigger.is_empty() { evn_code } else { header.trigger.as_str() };
        if code.is_empty() {
            return Err(Hl7Error::MissingField { segment: "MSH", field: 9 });
        }
        let event = AdtEvent::from_code(code).ok_or_else(|| Hl7Error::UnsupportedEvent { event: String::from(code) })?;
        let evn_time = |n: usize| -> Result<Option<DeviceTime>, Hl7Error> {
            match evn {
                None => Ok(None),
                Some(e) => parse_ts(e.field(n).component(1).raw()).map_err(|_| Hl7Error::BadValue {
                    segment: "EVN",
                    field: n as u16,
                    what: "time",
                }),
            }
        };
        let recorded = evn_time(2)?;
        let occurred = evn_time(6)?;

        let mut patients: Vec<AdtPatient> = Vec::new();
        for seg in message.segments() {
            match seg.id() {
                "PID" => patients.push(read_pid(seg)?),
                "PV1" => {
                    let p = patients.last_mut().ok_or(Hl7Error::MissingSegment { segment: "PID" })?;
                    if p.visit.is_none() {
                        p.visit = Some(read_pv1(seg)?);
                    }
                }
                "MRG" => {
                    let p = patients.last_mut().ok_or(Hl7Error::MissingSegment { segment: "PID" })?;
                    p.merged_ids.extend(read_cx_list(seg, "MRG", 1)?);
                }
                _ => {}
            }
        }
        if patients.is_empty() {
            return Err(Hl7Error::MissingSegment { segment: "PID" });
        }
        match event {
            AdtEvent::A17 if patients.len() != 2 => return Err(Hl7Error::MissingSegment { segment: "PID" }),
            AdtEvent::A40 => {
                if patients.iter().any(|p| p.merged_ids.is_empty()) {
                    return Err(Hl7Error::MissingSegment { segment: "MRG" });
                }
            }
            _ => {
                if patients.iter().any(|p| p.visit.is_none()) {
                    return Err(Hl7Error::MissingSegment { segment: "PV1" });
                }
            }
        }
        Ok(AdtMessage { header, version, event, recorded, occurred, patients })
    }

    /// When the event took effect: EVN-6, else EVN-2, else MSH-7 (`None` when none is given).
    pub fn effective_time(&self) -> Option<DeviceTime> {
        self.occurred.or(self.recorded).or(self.header.message_time)
    }
}

fn read_cx_list(seg: &Segment<'_>, name: &'static str, n: usize) -> Result<Vec<Cx>, Hl7Error> {
    let mut out = Vec::new();
    for rep in seg.field(n).repetitions() {
        let cx = Cx::from_repetition(rep).map_err(|_| Hl7Error::BadEscape { segment: name, field: n as u16 })?;
        if !cx.id.is_empty() {
            out.push(cx);
        }
    }
    if out.is_empty() {
        return Err(Hl7Error::MissingField { segment: name, field: n as u16 });
    }
    Ok(out)
}

fn read_pid(seg: &Segment<'_>) -> Result<AdtPatient, Hl7Error> {
    let ids = read_cx_list(seg, "PID", 3)?;
    let name = match seg.field(5).repetitions().next() {
        Some(r) if !r.is_empty() => Some(Xpn::from_repetition(r).map_err(|_| Hl7Error::BadEscape { segment: "PID", field: 5 })?),
        _ => None,
    };
    Ok(AdtPatient { ids, name, visit: None, merged_ids: Vec::new() })
}

fn read_pv1(seg: &Segment<'_>) -> Result<Visit, Hl7Error> {
    let pl = |n: usize| -> Result<Option<Pl>, Hl7Error> {
        let p = Pl::from_field(seg.field(n)).map_err(|_| Hl7Error::BadEscape { segment: "PV1", field: n as u16 })?;
        Ok(if p.is_empty() { None } else { Some(p) })
    };
    let visit_number = match seg.field(19).repetitions().next() {
        Some(r) if !r.component(1).is_empty() => {
            Some(Cx::from_repetition(r).map_err(|_| Hl7Error::BadEscape { segment: "PV1", field: 19 })?)
        }
        _ => None,
    };
    Ok(Visit {
        class: seg.field(2).component(1).text().map_err(|_| Hl7Error::BadEscape { segment: "PV1", field: 2 })?,
        location: pl(3)?,
        prior_location: pl(6)?,
        visit_number,
    })
}
