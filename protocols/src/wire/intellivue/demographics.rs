//! The patient demographics object (`NOM_MOC_PT_DEMOG` = 0x2A): the patient id the monitor
//! holds for its patient, which the gateway checks against the ADT feed (docs/adt.md, rule 7).
//!
//! ```text
//! poll            single poll {NOM_PART_OBJ, NOM_MOC_PT_DEMOG}, group NOM_ATTR_GRP_PT_DEMOG 0x0807
//! NOM_ATTR_PT_DEMOG_ST  0x0957  PatDemoState u16: 0 empty, 1 pre-admitted, 2 admitted, 8 discharged
//! NOM_ATTR_PT_ID        0x095A  String
//! NOM_ATTR_PT_NAME_FAMILY 0x095C, NOM_ATTR_PT_NAME_GIVEN 0x095D  String (not read: medgw takes
//!                       the name from the ADT feed, never from the device)
//! String          length: u16 (bytes) | UTF-16BE characters, ended by 0x0000 or by the length
//! ```
//!
//! Sources: the attribute ids from VSC's `AttributeIDs` (`NOM_ATTR_PT_ID = 0x95a`, "Patient
//! ID"), a Java client, a C++ client and a Python client (0x095A, "= PT_LIFETIME_ID"); one other
//! public Java client has 0x0984, which is the system id (`NOM_ATTR_SYS_ID`, attributes.rs) and
//! is treated as wrong, as its alarm-list ids are (alarms.rs). The poll: ICE polls the object
//! with a single poll and the demographics group (`requestSinglePoll(NOM_MOC_PT_DEMOG,
//! NOM_ATTR_GRP_PT_DEMOG)`); the Python client does the same. PatDemoState values: that Python
//! client **[single source]**. The String layout as in alarms.rs (KOS `String`, ICE); one
//! Python client reads the bytes as UTF-8, which agrees for ASCII only if each character is one
//! byte, so medgw reads UTF-16BE as the two others do and accepts nothing that is not text.

#[cfg(feature = "alloc")]
use super::attributes::AttributeList;
#[cfg(feature = "alloc")]
use super::Reader;
#[cfg(feature = "alloc")]
use crate::error::Error;
use crate::error::Result;

pub const NOM_ATTR_PT_DEMOG_ST: u16 = 0x0957;
pub const NOM_ATTR_PT_ID: u16 = 0x095A;
pub const NOM_ATTR_PT_NAME_FAMILY: u16 = 0x095C;
pub const NOM_ATTR_PT_NAME_GIVEN: u16 = 0x095D;

/// PatDemoState values.
pub mod state {
    pub const EMPTY: u16 = 0;
    pub const PRE_ADMITTED: u16 = 1;
    pub const ADMITTED: u16 = 2;
    pub const DISCHARGED: u16 = 8;
}

/// The longest patient id medgw accepts (an HL7 CX.1 is at most 199 characters in v2.7; ids
/// on monitors are far shorter).
pub const MAX_ID_CHARS: usize = 64;

/// The UTF-16BE code units of a String value, up to its terminator.
#[cfg(feature = "alloc")]
fn string_units(value: &[u8]) -> Result<impl Iterator<Item = u16> + '_> {
    let mut r = Reader::new(value);
    let s = r.counted()?;
    if s.len() % 2 != 0 {
        return Err(Error::BadField { field: "intellivue string length", value: s.len() as u32 });
    }
    Ok(s.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).take_while(|&u| u != 0))
}

/// Writes a String (monitor side): length, UTF-16BE, terminator.
pub fn write_string(w: &mut super::Writer<'_>, text: &str) -> Result<()> {
    let at = w.begin_len()?;
    for u in text.encode_utf16() {
        w.u16(u)?;
    }
    w.u16(0)?;
    w.end_len(at)
}

#[cfg(feature = "alloc")]
mod alloc_part {
    use alloc::string::String;

    use super::*;

    /// What the demographics object says about the patient.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum PatientReport {
        /// A patient with this id (admitted, or no state given).
        Id(String),
        /// No patient id: the state is empty, pre-admitted or discharged, or the id is blank.
        None,
    }

    /// Reads the patient id from the demographics object's attributes. A malformed id is an
    /// error (the gateway then compares nothing: no guess from damaged bytes).
    pub fn patient(attrs: &AttributeList<'_>) -> Result<PatientReport> {
        let st = match attrs.get(NOM_ATTR_PT_DEMOG_ST) {
            Some(v) => Some(Reader::new(v).u16()?),
            None => None,
        };
        if st.is_some_and(|s| s != state::ADMITTED) {
            return Ok(PatientReport::None);
        }
        let Some(v) = attrs.get(NOM_ATTR_PT_ID) else { return Ok(PatientReport::None) };
        let mut id = String::new();
        for c in char::decode_utf16(string_units(v)?) {
            let c = c.map_err(|_| Error::BadField { field: "intellivue patient id", value: 0xFFFD })?;
            if c.is_control() {
                return Err(Error::BadField { field: "intellivue patient id", value: c as u32 });
            }
            id.push(c);
            if id.chars().count() > MAX_ID_CHARS {
                return Err(Error::TooLong { max: MAX_ID_CHARS });
            }
        }
        let id = id.trim();
        Ok(if id.is_empty() { PatientReport::None } else { PatientReport::Id(id.into()) })
    }
}

#[cfg(feature = "alloc")]
pub use alloc_part::{patient, PatientReport};

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::wire::intellivue::attributes::{write_attribute_list, write_ava};
    use crate::wire::intellivue::Writer;

    fn attrs(state: Option<u16>, id: Option<&str>, buf: &mut [u8]) -> usize {
        let mut w = Writer::new(buf);
        let n = state.is_some() as u16 + id.is_some() as u16;
        write_attribute_list(&mut w, n, |w| {
            if let Some(s) = state {
                write_ava(w, NOM_ATTR_PT_DEMOG_ST, |w| w.u16(s))?;
            }
            if let Some(id) = id {
                write_ava(w, NOM_ATTR_PT_ID, |w| write_string(w, id))?;
            }
            Ok(())
        })
        .unwrap();
        w.len()
    }

    #[test]
    fn an_admitted_patient_has_its_id() {
        let mut buf = [0u8; 128];
        let n = attrs(Some(state::ADMITTED), Some(" MRN-4711 "), &mut buf);
        let l = AttributeList::parse(&buf[..n]).unwrap();
        assert_eq!(patient(&l).unwrap(), PatientReport::Id("MRN-4711".into()));
        // The bytes: length 20 = 9 characters + terminator, UTF-16BE.
        let n = attrs(None, Some("P1"), &mut buf);
        assert_eq!(&buf[8..n], &[0x00, 0x06, 0x00, b'P', 0x00, b'1', 0x00, 0x00]);
        assert_eq!(patient(&AttributeList::parse(&buf[..n]).unwrap()).unwrap(), PatientReport::Id("P1".into()));
    }

    #[test]
    fn no_patient_and_damage() {
        let mut buf = [0u8; 128];
        for st in [state::EMPTY, state::PRE_ADMITTED, state::DISCHARGED] {
            let n = attrs(Some(st), Some("MRN-4711"), &mut buf);
            assert_eq!(patient(&AttributeList::parse(&buf[..n]).unwrap()).unwrap(), PatientReport::None, "{st}");
        }
        let n = attrs(Some(state::ADMITTED), Some("   "), &mut buf);
        assert_eq!(patient(&AttributeList::parse(&buf[..n]).unwrap()).unwrap(), PatientReport::None);
        let n = attrs(Some(state::ADMITTED), None, &mut buf);
        assert_eq!(patient(&AttributeList::parse(&buf[..n]).unwrap()).unwrap(), PatientReport::None);
        // A control character, an odd length, a lone surrogate: errors, never an id.
        let n = attrs(None, Some("MRN\u{7}1"), &mut buf);
        assert!(patient(&AttributeList::parse(&buf[..n]).unwrap()).is_err());
        let raw = [0x00, 0x01, 0x00, 0x07, 0x09, 0x5A, 0x00, 0x03, 0x00, 0x01, 0x41];
        assert!(patient(&AttributeList::parse(&raw).unwrap()).is_err());
        let raw = [0x00, 0x01, 0x00, 0x08, 0x09, 0x5A, 0x00, 0x04, 0x00, 0x02, 0xD8, 0x00];
        assert!(patient(&AttributeList::parse(&raw).unwrap()).is_err());
        let long = "7".repeat(MAX_ID_CHARS + 1);
        let mut big = [0u8; 512];
        let n = attrs(None, Some(&long), &mut big);
        assert!(patient(&AttributeList::parse(&big[..n]).unwrap()).is_err());
    }
}
