//! The acknowledgement an HL7 receiver returns for every message (original mode, HL7 v2.5 §2.9.2).
//!
//! ```text
//! MSH|^~\&|<orig MSH-5>|<orig MSH-6>|<orig MSH-3>|<orig MSH-4>|<now>||ACK^<event>^ACK|<id>|<MSH-11>|<MSH-12>
//! MSA|AA|<orig MSH-10>                      accepted and processed
//! MSA|AE|<orig MSH-10>[|<text>]             error: not processed, the sender should fix and resend
//! MSA|AR|<orig MSH-10>[|<text>]             rejected: type, event, version or processing id not handled
//! ERR||<seg>^1^<field>|<0357 code>^<text>^HL70357|E            v2.5 and later (ERR-2, ERR-3, ERR-4)
//! ERR|<seg>^1^<field>^<0357 code>&<text>&HL70357               v2.3 and v2.4 (ERR-1 ELD)
//! ```
//! MSA-3 (text message) is written for v2.3/2.4 only; v2.5 deprecates it in favour of ERR.
//! medgw answers AA only for a message it has processed: a refusal always says why.

use alloc::string::String;
use core::fmt::Write;

use super::adt::{Header, Version};
use super::message::{escape_into, Delimiters};
use super::{ErrorCode, Hl7Error};
use crate::time::Timestamp;

/// MSA-1, table 0008 (original mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AckCode {
    /// Application accept.
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
        }
    }
}

/// Why a message was not accepted: a table 0357 code, a text and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    pub code: ErrorCode,
    pub text: String,
    pub location: Option<(&'static str, u16)>,
}

impl AckError {
    /// The ACK code for a parse error: AR for what medgw does not handle (message type, event,
    /// version), AE for a message that is malformed or incomplete.
    pub fn from_parse(e: &Hl7Error) -> (AckCode, AckError) {
        let code = match e.code() {
            ErrorCode::UnsupportedMessageType
            | ErrorCode::UnsupportedEventCode
            | ErrorCode::UnsupportedVersionId
            | ErrorCode::UnsupportedProcessingId => AckCode::AR,
            _ => AckCode::AE,
        };
        (code, AckError { code: e.code(), text: alloc::format!("{e}"), location: e.location() })
    }
}

/// Builds an ACK. `header` is `None` when the message was too broken to read its MSH: the ACK
/// then uses the default delimiters, v2.5 and an empty MSA-2. `application`/`facility` name
/// medgw in MSH-3/MSH-4 when set, else the original MSH-5/MSH-6 are echoed.
pub fn build(
    header: Option<&Header>,
    code: AckCode,
    error: Option<&AckError>,
    control_id: &str,
    application: &str,
    facility: &str,
    now: Timestamp,
) -> String {
    let d = header.map(|h| h.delimiters).unwrap_or_default();
    let version = header.and_then(|h| Version::from_code(&h.version)).unwrap_or(Version::V2_5);
    let version_text = header.filter(|h| Version::from_code(&h.version).is_some()).map(|h| h.version.as_str()).unwrap_or("2.5");
    let esc = |s: &str| {
        let mut o = String::new();
        escape_into(&mut o, s, &d);
        o
    };
    let (f, c, s) = (d.field, d.component, d.subcomponent);
    let mut m = String::with_capacity(256);
    m.push_str("MSH");
    m.push(f);
    for ch in d.encoding_characters() {
        m.push(ch);
    }
    let pick = |ours: &str, theirs: Option<&String>| if ours.is_empty() { theirs.cloned().unwrap_or_default() } else { esc(ours) };
    let _ = write!(
        m,
        "{f}{}{f}{}{f}{}{f}{}{f}{}{f}{f}ACK{c}{}{c}ACK{f}{}{f}{}{f}{}\r",
        pick(application, header.map(|h| &h.receiving_application)),
        pick(facility, header.map(|h| &h.receiving_facility)),
        header.map(|h| h.sending_application.as_str()).unwrap_or(""),
        header.map(|h| h.sending_facility.as_str()).unwrap_or(""),
        now.hl7(),
        esc(header.map(|h| h.trigger.as_str()).unwrap_or("")),
        esc(control_id),
        esc(header.map(|h| h.processing_id.as_str()).filter(|p| !p.is_empty()).unwrap_or("P")),
        version_text,
    );
    let _ = write!(m, "MSA{f}{}{f}{}", code.as_str(), esc(header.map(|h| h.control_id.as_str()).unwrap_or("")));
    if let (Some(e), false) = (error, version.has_err_v25()) {
        let _ = write!(m, "{f}{}", esc(&e.text));
    }
    m.push('\r');
    if let Some(e) = error {
        // ERL/ELD: segment ^ sequence ^ field; empty when the error has no place.
        let place = match e.location {
            Some((seg, 0)) => alloc::format!("{seg}{c}1"),
            Some((seg, field)) => alloc::format!("{seg}{c}1{c}{field}"),
            None => String::new(),
        };
        let _ = if version.has_err_v25() {
            write!(m, "ERR{f}{f}{place}{f}{}{c}{}{c}HL70357{f}E\r", e.code.value(), esc(e.code.text()))
        } else {
            let mut t = String::new();
            escape_into(&mut t, e.code.text(), &Delimiters { subcomponent: s, ..d });
            // ELD always has its four components: segment ^ sequence ^ field ^ code.
            let eld = match e.location {
                Some((seg, 0)) => alloc::format!("{seg}{c}1{c}"),
                Some(_) => place,
                None => alloc::format!("{c}"),
            };
            write!(m, "ERR{f}{eld}{c}{}{s}{}{s}HL70357\r", e.code.value(), t)
        };
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::hl7v2::parse_ack;
    use crate::hl7::message::Message;

    fn header(text: &str) -> Header {
        Header::read(&Message::parse(text).unwrap()).unwrap()
    }

    #[test]
    fn accepts_with_swapped_applications() {
        let h = header("MSH|^~\\&|ADT|HOSP|MEDGW|ICU|20261125101500||ADT^A01^ADT_A01|C1|P|2.5\r");
        let now = Timestamp::parse_rfc3339("2026-11-25T10:15:01Z").unwrap();
        let ack = build(Some(&h), AckCode::AA, None, "ACK1", "", "", now);
        assert_eq!(ack, "MSH|^~\\&|MEDGW|ICU|ADT|HOSP|20261125101501+0000||ACK^A01^ACK|ACK1|P|2.5\rMSA|AA|C1\r");
        let parsed = parse_ack(&ack).unwrap();
        assert!(parsed.accepted());
        assert_eq!(parsed.message_id, "C1");
    }

    #[test]
    fn errors_carry_table_0357_in_the_version_s_form() {
        let now = Timestamp(0);
        let e = AckError { code: ErrorCode::RequiredFieldMissing, text: String::from("PID-3 is required"), location: Some(("PID", 3)) };
        let v25 = header("MSH|^~\\&|ADT|HOSP|||20261125101500||ADT^A01|C2|P|2.5.1\r");
        let ack = build(Some(&v25), AckCode::AE, Some(&e), "A2", "MEDGW", "ICU3", now);
        assert!(ack.starts_with("MSH|^~\\&|MEDGW|ICU3|ADT|HOSP|"), "{ack}");
        assert!(ack.contains("\rMSA|AE|C2\rERR||PID^1^3|101^Required field missing^HL70357|E\r"), "{ack}");
        let v23 = header("MSH|^~\\&|ADT|HOSP|||20261125101500||ADT^A01|C3|P|2.3\r");
        let ack = build(Some(&v23), AckCode::AE, Some(&e), "A3", "", "", now);
        assert!(ack.contains("\rMSA|AE|C3|PID-3 is required\rERR|PID^1^3^101&Required field missing&HL70357\r"), "{ack}");
        assert!(!parse_ack(&ack).unwrap().accepted());
    }

    #[test]
    fn refuses_unreadable_and_unsupported_messages() {
        let (code, e) = AckError::from_parse(&Hl7Error::UnsupportedVersion { version: String::from("2.7") });
        assert_eq!(code, AckCode::AR);
        let v27 = header("MSH|^~\\&|ADT|HOSP|||20261125101500||ADT^A01|C4|P|2.7\r");
        let ack = build(Some(&v27), code, Some(&e), "A4", "", "", Timestamp(0));
        // Answered in 2.5, the nearest version medgw speaks, acknowledging C4.
        assert!(ack.contains("|ACK^A01^ACK|A4|P|2.5\rMSA|AR|C4\rERR||MSH^1^12|203^Unsupported version id^HL70357|E\r"), "{ack}");
        let (code, e) = AckError::from_parse(&Hl7Error::MissingMsh);
        assert_eq!(code, AckCode::AE);
        let ack = build(None, code, Some(&e), "A5", "MEDGW", "", Timestamp(0));
        assert!(ack.contains("\rMSA|AE|\rERR|||100^Segment sequence error^HL70357|E\r"), "{ack}");
    }
}
