//! The alert monitor's alarm lists (object class `NOM_MOC_VMO_AL_MON` = 0x36): the decoding of
//! the attributes from bytes. **Not yet polled**: the client (`client.rs`) does not ask for the
//! alert monitor yet (a poll of `{NOM_PART_OBJ, NOM_MOC_VMO_AL_MON}`, ICE polls it every second);
//! this module is what that poll's answer will be decoded with.
//!
//! ```text
//! attribute ids (OIDType):  NOM_ATTR_AL_MON_P_AL_LIST 0x0902  physiological alarms
//!                           NOM_ATTR_AL_MON_T_AL_LIST 0x0904  technical alarms (INOPs)
//! DevAlarmList   count: u16 | length: u16 | DevAlarmEntry[count]
//! DevAlarmEntry  al_source: u16 (physio id) | al_code: u16 (event term) | al_type: u16 (AlertType)
//!                | al_state: u16 (AlertState) | object: {class u16, context u16, handle u16}
//!                | alert_info_id: u16 | length: u16 | info[length]
//! info, alert_info_id 0x0201 GEN_ALMON_INFO: al_inst_no u16 | al_text u32 (TextId)
//!                                            | priority u16 | flags u16
//!       alert_info_id 0x0204 STR_ALMON_INFO: the same, then String
//! String         length: u16 (bytes, terminator included) | UTF-16BE chars | 0x0000
//! AlertType      0 none | 1/2/4 low/medium/high technical | 0x100/0x200/0x400 low/medium/high physiological
//! AlertState     0x8000 inhibited | 0x4000 suspended | 0x2000 latched | 0x1000 silenced/reset
//!                | 0x0400 test mode | 0x0200 standby | 0x0100 demo mode | 0x0008 new alert
//! ```
//!
//! Sources: the attribute ids, checked against three: VSC `AttributeIDs` (0x902 / 0x904), a
//! Scheme IntelliVue parser whose constants say "defined in Data Export Interface Program
//! Guide" (#x0902 / #x0904), and ICE / a Java client (0x0902 / 0x0904); one other public Java
//! client has 0x0906 / 0x0905, which medgw treats as wrong (protocols reference §2 notes the
//! conflict). The layouts, AlertType and AlertState: ICE `DevAlarmEntry.java` (via the
//! project's hospital-integration reference §2) and KOS (`Koshsky/Intellivue-api`,
//! `StrAlMonInfo`, `String`). The object class: VSC `NOM_MOC_VMO_AL_MON` = 0x36 (pdu.rs).

use super::Reader;
use crate::error::Result;

pub const NOM_ATTR_AL_MON_P_AL_LIST: u16 = 0x0902;
pub const NOM_ATTR_AL_MON_T_AL_LIST: u16 = 0x0904;
pub const GEN_ALMON_INFO: u16 = 0x0201;
pub const STR_ALMON_INFO: u16 = 0x0204;

/// AlertType values.
pub mod alert_type {
    pub const NO_ALERT: u16 = 0;
    pub const LOW_PRI_T_AL: u16 = 1;
    pub const MED_PRI_T_AL: u16 = 2;
    pub const HI_PRI_T_AL: u16 = 4;
    pub const LOW_PRI_P_AL: u16 = 0x100;
    pub const MED_PRI_P_AL: u16 = 0x200;
    pub const HI_PRI_P_AL: u16 = 0x400;
}

/// AlertState bits.
pub mod alert_state {
    pub const INHIBITED: u16 = 0x8000;
    pub const SUSPENDED: u16 = 0x4000;
    pub const LATCHED: u16 = 0x2000;
    pub const SILENCED_RESET: u16 = 0x1000;
    pub const TEST_MODE: u16 = 0x0400;
    pub const STANDBY: u16 = 0x0200;
    pub const DEMO_MODE: u16 = 0x0100;
    pub const NEW_ALERT: u16 = 0x0008;
}

/// One DevAlarmEntry, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevAlarmEntry<'a> {
    pub source: u16,
    pub code: u16,
    pub alert_type: u16,
    pub state: u16,
    /// Object class, context id, handle of the object that raised it.
    pub object: (u16, u16, u16),
    pub info_id: u16,
    pub info: &'a [u8],
}

impl<'a> DevAlarmEntry<'a> {
    fn read(r: &mut Reader<'a>) -> Result<DevAlarmEntry<'a>> {
        Ok(DevAlarmEntry {
            source: r.u16()?,
            code: r.u16()?,
            alert_type: r.u16()?,
            state: r.u16()?,
            object: (r.u16()?, r.u16()?, r.u16()?),
            info_id: r.u16()?,
            info: r.counted()?,
        })
    }

    /// The text of a STR_ALMON_INFO, as UTF-16BE code units (up to the terminator); `None` for
    /// other infos or a malformed one.
    pub fn text_units(&self) -> Option<impl Iterator<Item = u16> + 'a> {
        if self.info_id != STR_ALMON_INFO {
            return None;
        }
        let mut r = Reader::new(self.info);
        // al_inst_no, al_text, priority, flags.
        r.take(10).ok()?;
        let s = r.counted().ok()?;
        Some(s.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).take_while(|&u| u != 0))
    }

    /// The TextId (al_text) of a GEN_ or STR_ALMON_INFO.
    pub fn text_id(&self) -> Option<u32> {
        if self.info_id != STR_ALMON_INFO && self.info_id != GEN_ALMON_INFO {
            return None;
        }
        Reader::new(self.info.get(2..)?).u32().ok()
    }
}

/// Iterates a DevAlarmList: `count` entries that exactly fill `length`.
pub fn dev_alarm_list(value: &[u8]) -> Result<impl Iterator<Item = Result<DevAlarmEntry<'_>>> + '_> {
    let mut r = Reader::new(value);
    let count = r.u16()?;
    let body = r.counted()?;
    Ok(super::counted_items(body, count, "intellivue alarm list length", DevAlarmEntry::read))
}

#[cfg(feature = "alloc")]
mod report {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::*;
    use crate::alarm::{codes, AlarmCondition, AlarmKind, AlarmReport, AlarmState, Inactivation, Priority, ReportScope};
    use crate::mdc::MdcCode;
    use crate::observation::VendorCode;
    use crate::wire::intellivue::nomenclature;

    /// Kind and priority from AlertType; `list_kind` (which list the entry came from) when
    /// the type is 0 or not one of the six values.
    pub fn kind_priority(alert_type: u16, list_kind: AlarmKind) -> (AlarmKind, Option<Priority>) {
        use alert_type::*;
        match alert_type {
            LOW_PRI_T_AL => (AlarmKind::Technical, Some(Priority::Low)),
            MED_PRI_T_AL => (AlarmKind::Technical, Some(Priority::Medium)),
            HI_PRI_T_AL => (AlarmKind::Technical, Some(Priority::High)),
            LOW_PRI_P_AL => (AlarmKind::Physiological, Some(Priority::Low)),
            MED_PRI_P_AL => (AlarmKind::Physiological, Some(Priority::Medium)),
            HI_PRI_P_AL => (AlarmKind::Physiological, Some(Priority::High)),
            NO_ALERT => (list_kind, Some(Priority::NoAlarm)),
            _ => (list_kind, None),
        }
    }

    /// The condition of one entry. Source: the physio id through the IntelliVue metric table
    /// (unmapped if not listed there); code: the event term as an MDC_EVT code only when
    /// [`codes::ref_id`] knows it. Vendor code `source:code` (decimal, as IntelliVue vendor
    /// codes are written elsewhere).
    pub fn condition(e: &DevAlarmEntry<'_>, list_kind: AlarmKind) -> AlarmCondition {
        let (kind, priority) = kind_priority(e.alert_type, list_kind);
        let evt = codes::evt(e.code);
        let code = if codes::ref_id(evt).is_some() { evt } else { MdcCode::UNMAPPED };
        let source = nomenclature::metric(e.source).unwrap_or(MdcCode::UNMAPPED);
        let mut text: String = match e.text_units() {
            Some(units) => char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect(),
            None => String::new(),
        };
        let text_trim = text.trim().len();
        if text_trim == 0 {
            text = alloc::format!("alert {} on {}", e.code, e.source);
        }
        use alert_state::*;
        for (bit, label) in [(DEMO_MODE, " [demo mode]"), (TEST_MODE, " [test mode]"), (STANDBY, " [standby]")] {
            if e.state & bit != 0 {
                text.push_str(label);
            }
        }
        let vendor = VendorCode { namespace: "intellivue".into(), code: alloc::format!("{}:{}", e.source, e.code).into() };
        let mut c = AlarmCondition::new(code, vendor, source, kind, text).with_priority(priority);
        c.device_priority = Some(e.alert_type);
        if e.state & LATCHED != 0 {
            c.state = AlarmState::Latched;
        }
        c.inactivation = if e.state & INHIBITED != 0 {
            Inactivation::AlarmOff
        } else if e.state & SUSPENDED != 0 {
            Inactivation::AlarmPaused
        } else if e.state & SILENCED_RESET != 0 {
            Inactivation::AudioPaused
        } else {
            Inactivation::Enabled
        };
        c
    }

    /// The report of one list attribute (0x0902 or 0x0904), complete for its scope. A damaged
    /// list is an error and no report (the last one stands).
    pub fn list_report(attribute_id: u16, value: &[u8]) -> Result<AlarmReport> {
        let (scope, kind) = match attribute_id {
            NOM_ATTR_AL_MON_P_AL_LIST => (ReportScope::Physiological, AlarmKind::Physiological),
            NOM_ATTR_AL_MON_T_AL_LIST => (ReportScope::Technical, AlarmKind::Technical),
            other => return Err(crate::error::Error::Unsupported { what: "intellivue alarm list attribute", value: other as u32 }),
        };
        let mut conditions = Vec::new();
        for e in dev_alarm_list(value)? {
            conditions.push(condition(&e?, kind));
        }
        Ok(AlarmReport::new(scope, conditions))
    }
}

#[cfg(feature = "alloc")]
pub use report::{condition, kind_priority, list_report};

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::alarm::{codes, AlarmKind, AlarmState, Inactivation, Priority, ReportScope};
    use crate::mdc::code;
    use alloc::vec::Vec;

    /// A DevAlarmList with one entry, built by hand from the layout above: SpO2 (0x4BB8)
    /// MDC_EVT_LO (term 62 = 0x3E), high-priority physiological (0x400), latched (0x2000),
    /// object {0x0006, 0, 0x0012}, STR_ALMON_INFO "**SpO2 85<90" (the monitor's style).
    fn p_list() -> Vec<u8> {
        let text = "**SpO2 85<90";
        let mut s: Vec<u8> = Vec::new();
        for u in text.encode_utf16() {
            s.extend_from_slice(&u.to_be_bytes());
        }
        s.extend_from_slice(&[0, 0]);
        let mut info = Vec::new();
        info.extend_from_slice(&[0x00, 0x01]); // al_inst_no
        info.extend_from_slice(&[0x00, 0x00, 0x12, 0x34]); // al_text
        info.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]); // priority, flags
        info.extend_from_slice(&(s.len() as u16).to_be_bytes());
        info.extend_from_slice(&s);
        let mut e = Vec::new();
        for v in [0x4BB8u16, 62, 0x0400, 0x2000, 0x0006, 0x0000, 0x0012, STR_ALMON_INFO, info.len() as u16] {
            e.extend_from_slice(&v.to_be_bytes());
        }
        e.extend_from_slice(&info);
        let mut l = Vec::new();
        l.extend_from_slice(&1u16.to_be_bytes());
        l.extend_from_slice(&(e.len() as u16).to_be_bytes());
        l.extend_from_slice(&e);
        l
    }

    #[test]
    fn a_physiological_entry_with_its_text() {
        let r = list_report(NOM_ATTR_AL_MON_P_AL_LIST, &p_list()).unwrap();
        assert_eq!(r.scope, ReportScope::Physiological);
        let c = &r.conditions[0];
        assert_eq!(
            (c.code, c.source, c.kind, c.priority),
            (codes::MDC_EVT_LO, code::MDC_PULS_OXIM_SAT_O2, AlarmKind::Physiological, Some(Priority::High))
        );
        assert_eq!((c.text.as_str(), c.state, c.vendor.code.as_ref()), ("**SpO2 85<90", AlarmState::Latched, "19384:62"));
        assert_eq!(c.device_priority, Some(0x400));
    }

    #[test]
    fn technical_list_types_states_and_damage() {
        // Technical list with one entry: unknown source and code, medium technical, suspended,
        // GEN_ALMON_INFO (no text).
        let mut e = Vec::new();
        for v in [0xF123u16, 0xF0AA, 0x0002, 0x4000 | 0x0100, 6, 0, 1, GEN_ALMON_INFO, 10] {
            e.extend_from_slice(&v.to_be_bytes());
        }
        e.extend_from_slice(&[0; 10]);
        let mut l = Vec::from(1u16.to_be_bytes());
        l.extend_from_slice(&(e.len() as u16).to_be_bytes());
        l.extend_from_slice(&e);
        let r = list_report(NOM_ATTR_AL_MON_T_AL_LIST, &l).unwrap();
        let c = &r.conditions[0];
        assert_eq!((c.kind, c.priority, c.inactivation), (AlarmKind::Technical, Some(Priority::Medium), Inactivation::AlarmPaused));
        assert!(!c.is_mapped() && c.source.is_unmapped());
        assert!(c.text.ends_with("[demo mode]"), "{}", c.text);
        // An empty list is a report of none; a cut list is an error, never a panic.
        let empty = list_report(NOM_ATTR_AL_MON_T_AL_LIST, &[0, 0, 0, 0]).unwrap();
        assert!(empty.conditions.is_empty());
        for n in 0..l.len() {
            assert!(list_report(NOM_ATTR_AL_MON_T_AL_LIST, &l[..n]).is_err(), "{n}");
        }
        // A count that leaves bytes over is an error too.
        let mut over = l.clone();
        over[1] = 0;
        assert!(list_report(NOM_ATTR_AL_MON_T_AL_LIST, &over).is_err());
        assert!(list_report(0x0905, &l).is_err());
        assert_eq!(kind_priority(0x0400, AlarmKind::Technical), (AlarmKind::Physiological, Some(Priority::High)));
        assert_eq!(kind_priority(0, AlarmKind::Technical), (AlarmKind::Technical, Some(Priority::NoAlarm)));
    }
}
