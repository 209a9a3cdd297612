//! MDIB attribute data types: the attribute list and the values medgw reads from it
//! (guide ch. 5 "Attribute Data Types"; PIPG-36, PIPG-75..77 in the scapy dissector's citations).
//!
//! ```text
//! AttributeList   count: u16 | length: u16 (bytes that follow) | AVAType[count]
//! AVAType         attribute_id: u16 | length: u16 | value[length]
//! NuObsValue      physio_id: u16 | state: u16 (MeasurementState) | unit_code: u16 | value: FLOAT
//! NuObsValueCmp   count: u16 | length: u16 | NuObsValue[count]
//! AbsoluteTime    century year month day hour minute second sec_fractions   (8 x BCD byte)
//! RelativeTime    u32, ticks of 125 us since the monitor started
//! VariableLabel   length: u16 | bytes[length]
//! SystemModel     manufacturer: VariableLabel | model_number: VariableLabel
//! ProductionSpec  count: u16 | length: u16 | { spec_type: u16, component_id: u16, VariableLabel }[count]
//! ```
//! Sources per item in the doc comments; VSC/ICE/KOS/PIPG as in the module root.

use crate::error::{Error, Result};
use crate::quality::{Flags, Status};
use crate::time::CivilTime;

use super::{Reader, Writer};

/// Attribute ids (OIDType, partition NOM_PART_OBJ) used by medgw. Values: VSC `AttributeIDs`,
/// ICE `AttributeId` (same numbers), protocols.md §3.
pub mod id {
    /// Object handle.
    pub const NOM_ATTR_ID_HANDLE: u16 = 0x0921;
    /// Label (TextId) of a metric.
    pub const NOM_ATTR_ID_LABEL: u16 = 0x0924;
    pub const NOM_ATTR_ID_LABEL_STRING: u16 = 0x0927;
    /// System model: manufacturer and model number (SystemModel).
    pub const NOM_ATTR_ID_MODEL: u16 = 0x0928;
    /// Production specification: serial number, part number, revisions (ProductionSpec).
    pub const NOM_ATTR_ID_PROD_SPECN: u16 = 0x092D;
    /// Object type (TYPE: partition, code).
    pub const NOM_ATTR_ID_TYPE: u16 = 0x092F;
    pub const NOM_ATTR_METRIC_SPECN: u16 = 0x093F;
    /// Compound numeric observed value (NuObsValueCmp), e.g. NIBP sys/dia/mean.
    pub const NOM_ATTR_NU_CMPD_VAL_OBS: u16 = 0x094B;
    /// Numeric observed value (NuObsValue).
    pub const NOM_ATTR_NU_VAL_OBS: u16 = 0x0950;
    /// System id (VariableLabel).
    pub const NOM_ATTR_SYS_ID: u16 = 0x0984;
    /// The monitor's date and time (AbsoluteTime), in the MDS object.
    pub const NOM_ATTR_TIME_ABS: u16 = 0x0987;
    /// The monitor's relative time at the same instant (RelativeTime), in the MDS object.
    pub const NOM_ATTR_TIME_REL: u16 = 0x098F;
    /// Absolute time stamp of an observation.
    pub const NOM_ATTR_TIME_STAMP_ABS: u16 = 0x0990;
    /// Relative time stamp of an observation.
    pub const NOM_ATTR_TIME_STAMP_REL: u16 = 0x0991;
    /// Poll profile support in the association's user info (NOM_POLL_PROFILE_SUPPORT).
    pub const NOM_POLL_PROFILE_SUPPORT: u16 = 0x0001;
    /// Poll profile extensions, an optional package of the poll profile.
    pub const NOM_ATTR_POLL_PROFILE_EXT: u16 = 0xF001;
    /// Time period of an extended poll (RelativeTime).
    pub const NOM_ATTR_TIME_PD_POLL: u16 = 0xF13E;
}

/// Attribute groups (polled_attr_grp). VSC `AttributeIDs` (NOM_ATTR_GRP_*), ICE.
pub mod group {
    /// All attributes.
    pub const ALL: u16 = 0x0000;
    /// The alert monitor's group: the device alarm condition and the P/T alarm lists (ICE polls
    /// the alert monitor with it; VSC, a Java client and a C header agree on 0x0801).
    pub const NOM_ATTR_GRP_AL_MON: u16 = 0x0801;
    pub const NOM_ATTR_GRP_METRIC_VAL_OBS: u16 = 0x0803;
    /// Patient demographics (VSC, two Java clients, a Python client: 0x0807).
    pub const NOM_ATTR_GRP_PT_DEMOG: u16 = 0x0807;
    pub const NOM_ATTR_GRP_SYS_ID: u16 = 0x080B;
    /// System production group: model and production specification. ICE polls it after the
    /// MDS create event; VSC's keep-alive polls it.
    pub const NOM_ATTR_GRP_SYS_PROD: u16 = 0x080C;
    pub const NOM_ATTR_GRP_VMO_STATIC: u16 = 0x0811;
}

/// One attribute-value assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ava<'a> {
    pub id: u16,
    pub value: &'a [u8],
}

impl<'a> Ava<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Ava<'a>> {
        Ok(Ava { id: r.u16()?, value: r.counted()? })
    }
}

/// A checked view of an AttributeList: the declared byte length is within the input, and the
/// iterator checks every AVA's length against what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeList<'a> {
    pub count: u16,
    body: &'a [u8],
}

impl<'a> AttributeList<'a> {
    /// Reads an AttributeList from the reader (count, length, body).
    pub fn read(r: &mut Reader<'a>) -> Result<AttributeList<'a>> {
        let count = r.u16()?;
        let body = r.counted()?;
        Ok(AttributeList { count, body })
    }

    pub fn parse(bytes: &'a [u8]) -> Result<AttributeList<'a>> {
        AttributeList::read(&mut Reader::new(bytes))
    }

    pub const EMPTY: AttributeList<'static> = AttributeList { count: 0, body: &[] };

    pub fn iter(&self) -> AvaIter<'a> {
        super::counted_items(self.body, self.count, "attribute list length", Ava::read)
    }

    /// The value of the first AVA with this id; `None` if absent or the list is malformed.
    pub fn get(&self, id: u16) -> Option<&'a [u8]> {
        self.iter().filter_map(|a| a.ok()).find(|a| a.id == id).map(|a| a.value)
    }

    /// Checks the whole list: `count` AVAs that exactly fill `length` bytes.
    pub fn validate(&self) -> Result<()> {
        for ava in self.iter() {
            ava?;
        }
        Ok(())
    }
}

/// Iterates the AVAs; yields one error and stops at the first inconsistency.
pub type AvaIter<'a> = super::CountedItems<'a, Ava<'a>>;

/// Writes an AttributeList whose AVAs `body` writes; `count` is how many it writes.
pub fn write_attribute_list(w: &mut Writer<'_>, count: u16, body: impl FnOnce(&mut Writer<'_>) -> Result<()>) -> Result<()> {
    w.u16(count)?;
    let at = w.begin_len()?;
    body(w)?;
    w.end_len(at)
}

/// Writes one AVA whose value `value` writes.
pub fn write_ava(w: &mut Writer<'_>, id: u16, value: impl FnOnce(&mut Writer<'_>) -> Result<()>) -> Result<()> {
    w.u16(id)?;
    let at = w.begin_len()?;
    value(w)?;
    w.end_len(at)
}

/// RelativeTime: a free-running u32 tick count with a resolution of 125 us (1/8 ms).
/// VSC converts with `* 125 / 1000`; ICE `RelativeTime.RESOLUTION_MICROSECONDS = 125L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelativeTime(pub u32);

impl RelativeTime {
    pub const TICKS_PER_MS: u32 = 8;

    pub fn from_millis(ms: u64) -> RelativeTime {
        RelativeTime(ms.saturating_mul(Self::TICKS_PER_MS as u64).min(u32::MAX as u64) as u32)
    }

    pub fn as_millis(self) -> u64 {
        self.0 as u64 / Self::TICKS_PER_MS as u64
    }

    /// Milliseconds from `earlier` to `self`, negative when `self` is earlier. The counter wraps
    /// after 2^32 ticks (6.2 days), so the difference is taken modulo 2^32 as a signed value,
    /// which is right for instants within 3.1 days of each other.
    pub fn millis_since(self, earlier: RelativeTime) -> i64 {
        let ticks = self.0.wrapping_sub(earlier.0) as i32 as i64;
        ticks.div_euclid(Self::TICKS_PER_MS as i64)
    }

    pub fn read(r: &mut Reader<'_>) -> Result<RelativeTime> {
        r.u32().map(RelativeTime)
    }
}

/// AbsoluteTime: eight BCD bytes. All 0xFF means "not set" (ICE `AbsoluteTime.parse`; VSC notes
/// that several monitors do not support it and reads 0xFF as zero). `sec_fractions` is not used:
/// ICE "per spec sec_fractions is ignored" **[single source]**, so times have whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsoluteTime(pub [u8; 8]);

impl AbsoluteTime {
    pub const UNSET: AbsoluteTime = AbsoluteTime([0xFF; 8]);

    pub fn read(r: &mut Reader<'_>) -> Result<AbsoluteTime> {
        match r.take(8)?.first_chunk::<8>() {
            Some(b) => Ok(AbsoluteTime(*b)),
            None => Err(Error::Truncated { needed: 8, got: 0 }),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<AbsoluteTime> {
        AbsoluteTime::read(&mut Reader::new(bytes))
    }

    /// The calendar time, `None` when not set (all 0xFF, or all zero as VSC treats year 0).
    pub fn civil(&self) -> Result<Option<CivilTime>> {
        if self.0 == [0xFF; 8] || self.0 == [0; 8] {
            return Ok(None);
        }
        let mut d = [0u8; 7];
        for (slot, &b) in d.iter_mut().zip(self.0.iter()) {
            let (hi, lo) = (b >> 4, b & 0x0F);
            if hi > 9 || lo > 9 {
                return Err(Error::BadField { field: "absolute time BCD", value: b as u32 });
            }
            *slot = hi * 10 + lo;
        }
        let [century, year, month, day, hour, minute, second] = d;
        let civil = CivilTime { year: century as u16 * 100 + year as u16, month, day, hour, minute, second, millisecond: 0 };
        civil.validate()?;
        Ok(Some(civil))
    }

    /// Encodes a calendar time (sec_fractions written as 0).
    pub fn from_civil(c: &CivilTime) -> AbsoluteTime {
        fn bcd(v: u16) -> u8 {
            let v = (v % 100) as u8;
            (v / 10) << 4 | (v % 10)
        }
        AbsoluteTime([
            bcd(c.year / 100),
            bcd(c.year),
            bcd(c.month as u16),
            bcd(c.day as u16),
            bcd(c.hour as u16),
            bcd(c.minute as u16),
            bcd(c.second as u16),
            0,
        ])
    }
}

/// MeasurementState bits (VSC `MeasurementState` and `DataConstants`; PIPG-75/76 in the scapy
/// dissector, which also quotes the guide: "The measurement is valid if the first octet of the
/// state is all 0").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MeasurementState(pub u16);

impl MeasurementState {
    pub const INVALID: u16 = 0x8000;
    pub const QUESTIONABLE: u16 = 0x4000;
    pub const UNAVAILABLE: u16 = 0x2000;
    pub const CALIBRATION_ONGOING: u16 = 0x1000;
    pub const TEST_DATA: u16 = 0x0800;
    pub const DEMO_DATA: u16 = 0x0400;
    pub const VALIDATED_DATA: u16 = 0x0080;
    pub const EARLY_INDICATION: u16 = 0x0040;
    pub const MSMT_ONGOING: u16 = 0x0020;
    pub const MSMT_STATE_IN_ALARM: u16 = 0x0002;
    pub const MSMT_STATE_AL_INHIBITED: u16 = 0x0001;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// The guide's validity rule: no bit of the first (high) octet set.
    pub fn is_valid(self) -> bool {
        self.0 & 0xFF00 == 0
    }

    /// The quality flags the state says. VALIDATED_DATA and MSMT_STATE_AL_INHIBITED carry no
    /// flag (a validated value is the normal case; an inhibited alarm says nothing of the value).
    pub fn flags(self) -> Flags {
        const MAP: [(u16, Flags); 8] = [
            (MeasurementState::INVALID, Flags::INVALID),
            (MeasurementState::QUESTIONABLE, Flags::QUESTIONABLE),
            (MeasurementState::UNAVAILABLE, Flags::UNAVAILABLE),
            (MeasurementState::CALIBRATION_ONGOING, Flags::CALIBRATING),
            (MeasurementState::TEST_DATA, Flags::TEST),
            (MeasurementState::DEMO_DATA, Flags::DEMO),
            (MeasurementState::EARLY_INDICATION | MeasurementState::MSMT_ONGOING, Flags::EARLY_ESTIMATE),
            (MeasurementState::MSMT_STATE_IN_ALARM, Flags::ALARM),
        ];
        MAP.iter().filter(|(bit, _)| self.0 & bit != 0).fold(Flags::NONE, |acc, (_, f)| acc | *f)
    }

    /// Preliminary while the monitor says the value is an early indication or still being
    /// measured.
    pub fn status(self) -> Status {
        if self.has(Self::EARLY_INDICATION) || self.has(Self::MSMT_ONGOING) {
            Status::Preliminary
        } else {
            Status::Final
        }
    }
}

/// NuObsValue, 10 bytes (protocols.md §3, VSC `NuObsValue`, PIPG-76).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NuObsValue {
    pub physio_id: u16,
    pub state: MeasurementState,
    pub unit_code: u16,
    /// The raw FLOAT-Type; decode with [`crate::wire::sfloat::float`].
    pub value: u32,
}

impl NuObsValue {
    pub const LEN: usize = 10;

    pub fn read(r: &mut Reader<'_>) -> Result<NuObsValue> {
        Ok(NuObsValue { physio_id: r.u16()?, state: MeasurementState(r.u16()?), unit_code: r.u16()?, value: r.u32()? })
    }

    /// Parses the value of a NOM_ATTR_NU_VAL_OBS attribute (exactly 10 bytes).
    pub fn parse(bytes: &[u8]) -> Result<NuObsValue> {
        if bytes.len() != Self::LEN {
            return Err(Error::BadField { field: "NuObsValue length", value: bytes.len() as u32 });
        }
        NuObsValue::read(&mut Reader::new(bytes))
    }

    pub fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.physio_id)?;
        w.u16(self.state.0)?;
        w.u16(self.unit_code)?;
        w.u32(self.value)
    }
}

/// A checked view of NuObsValueCmp: `length` is exactly `count` × 10 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NuObsValueCmp<'a> {
    body: &'a [u8],
}

impl<'a> NuObsValueCmp<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<NuObsValueCmp<'a>> {
        let mut r = Reader::new(bytes);
        let count = r.u16()? as usize;
        let body = r.counted()?;
        if body.len() != count * NuObsValue::LEN {
            return Err(Error::BadField { field: "NuObsValueCmp length", value: body.len() as u32 });
        }
        if r.remaining() != 0 {
            return Err(Error::BadField { field: "NuObsValueCmp trailing bytes", value: r.remaining() as u32 });
        }
        Ok(NuObsValueCmp { body })
    }

    pub fn len(&self) -> usize {
        self.body.len() / NuObsValue::LEN
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = NuObsValue> + 'a {
        self.body.chunks_exact(NuObsValue::LEN).filter_map(|c| NuObsValue::read(&mut Reader::new(c)).ok())
    }

    pub fn write(values: &[NuObsValue], w: &mut Writer<'_>) -> Result<()> {
        w.u16(values.len() as u16)?;
        let at = w.begin_len()?;
        for v in values {
            v.write(w)?;
        }
        w.end_len(at)
    }
}

/// VariableLabel: a counted 8-bit string.
pub fn read_variable_label<'a>(r: &mut Reader<'a>) -> Result<&'a [u8]> {
    r.counted()
}

/// The printable text of a label: trailing NULs and spaces removed, `None` if empty or not
/// UTF-8 (a serial number that cannot be read is better absent than garbled).
pub fn label_text(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().rposition(|&b| b != 0 && b != b' ').map_or(0, |i| i + 1);
    let text = core::str::from_utf8(bytes.get(..end)?).ok()?;
    (!text.is_empty() && !text.chars().any(char::is_control)).then_some(text)
}

/// SystemModel: manufacturer and model number (ICE `SystemModel`; the DICES C++ driver reads two
/// VariableLabels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemModel<'a> {
    pub manufacturer: &'a [u8],
    pub model_number: &'a [u8],
}

impl<'a> SystemModel<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<SystemModel<'a>> {
        let mut r = Reader::new(bytes);
        Ok(SystemModel { manufacturer: read_variable_label(&mut r)?, model_number: read_variable_label(&mut r)? })
    }

    pub fn write(manufacturer: &[u8], model: &[u8], w: &mut Writer<'_>) -> Result<()> {
        w.u16(manufacturer.len() as u16)?;
        w.put(manufacturer)?;
        w.u16(model.len() as u16)?;
        w.put(model)
    }
}

/// ProdSpecEntry spec types (ICE `ProductionSpecificationType`: UNSPECIFIED 0, SERIAL_NUMBER 1,
/// PART_NUMBER 2, HW_REVISION 3, SW_REVISION 4, FW_REVISION 5, PROTOCOL_REVISION 6; the same
/// numbering as IEEE 11073-10201 ProdSpecEntry).
pub mod spec_type {
    pub const SERIAL_NUMBER: u16 = 1;
    pub const PART_NUMBER: u16 = 2;
    pub const HW_REVISION: u16 = 3;
    pub const SW_REVISION: u16 = 4;
    pub const FW_REVISION: u16 = 5;
}

/// Component id of the whole product (ICE `ComponentId.ID_COMP_PRODUCT = 0x0008`) **[single
/// source]**.
pub const ID_COMP_PRODUCT: u16 = 0x0008;

/// A checked view of ProductionSpec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductionSpec<'a> {
    count: u16,
    body: &'a [u8],
}

impl<'a> ProductionSpec<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<ProductionSpec<'a>> {
        let mut r = Reader::new(bytes);
        let count = r.u16()?;
        let body = r.counted()?;
        let spec = ProductionSpec { count, body };
        // Walk once so that later lookups cannot meet a malformed entry.
        let mut rr = Reader::new(body);
        for _ in 0..count {
            rr.u16()?;
            rr.u16()?;
            read_variable_label(&mut rr)?;
        }
        if rr.remaining() != 0 {
            return Err(Error::BadField { field: "ProductionSpec length", value: body.len() as u32 });
        }
        Ok(spec)
    }

    /// The label of the entry with this spec type and component.
    pub fn find(&self, spec_type: u16, component: u16) -> Option<&'a [u8]> {
        let mut r = Reader::new(self.body);
        for _ in 0..self.count {
            let t = r.u16().ok()?;
            let c = r.u16().ok()?;
            let v = read_variable_label(&mut r).ok()?;
            if t == spec_type && c == component {
                return Some(v);
            }
        }
        None
    }

    /// Writes a ProductionSpec of `(spec_type, component, label)` entries.
    pub fn write(entries: &[(u16, u16, &[u8])], w: &mut Writer<'_>) -> Result<()> {
        w.u16(entries.len() as u16)?;
        let at = w.begin_len()?;
        for (t, c, v) in entries {
            w.u16(*t)?;
            w.u16(*c)?;
            w.u16(v.len() as u16)?;
            w.put(v)?;
        }
        w.end_len(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sfloat::{float, FloatValue};
    use alloc::string::ToString;

    /// PP-3 (protocols.md §3): NU_VAL_OBS attribute, SpO2 97 %.
    const PP3: [u8; 14] = [0x09, 0x50, 0x00, 0x0A, 0x4B, 0xB8, 0x00, 0x00, 0x02, 0x20, 0x00, 0x00, 0x00, 0x61];

    #[test]
    fn pp3_spo2_attribute() {
        let mut list = alloc::vec![0x00, 0x01, 0x00, PP3.len() as u8];
        list.extend_from_slice(&PP3);
        let l = AttributeList::parse(&list).unwrap();
        let avas: alloc::vec::Vec<_> = l.iter().collect::<Result<_>>().unwrap();
        assert_eq!(avas.len(), 1);
        assert_eq!(avas[0].id, id::NOM_ATTR_NU_VAL_OBS);
        let nu = NuObsValue::parse(avas[0].value).unwrap();
        assert_eq!(nu.physio_id, 0x4BB8);
        assert_eq!(nu.unit_code, 0x0220);
        assert!(nu.state.is_valid());
        assert_eq!(float(nu.value).number().unwrap().to_string(), "97");
    }

    #[test]
    fn pp4_float_values() {
        // PP-4: FF 00 03 CF = 97.5; 00 7F FF FF = NaN (big-endian on this link).
        assert_eq!(float(u32::from_be_bytes([0xFF, 0x00, 0x03, 0xCF])).number().unwrap().to_string(), "97.5");
        assert_eq!(float(u32::from_be_bytes([0x00, 0x7F, 0xFF, 0xFF])), FloatValue::NaN);
    }

    #[test]
    fn attribute_list_lengths_are_checked() {
        // Count says 2, only one AVA in the bytes.
        let mut list = alloc::vec![0x00, 0x02, 0x00, PP3.len() as u8];
        list.extend_from_slice(&PP3);
        let l = AttributeList::parse(&list).unwrap();
        assert!(l.validate().is_err());
        assert_eq!(l.get(id::NOM_ATTR_NU_VAL_OBS), Some(&PP3[4..]));
        // Count says 0 but bytes follow.
        let l = AttributeList::parse(&[0, 0, 0, 2, 0xAA, 0xBB]).unwrap();
        assert_eq!(l.validate(), Err(Error::BadField { field: "attribute list length", value: 2 }));
        // Declared length beyond the input.
        assert!(AttributeList::parse(&[0, 1, 0, 9, 0, 0]).is_err());
        // An AVA longer than its list.
        let l = AttributeList::parse(&[0, 1, 0, 4, 0x09, 0x50, 0x00, 0x0A]).unwrap();
        assert!(l.validate().is_err());
    }

    #[test]
    fn measurement_state_bits_to_flags() {
        let s = MeasurementState(MeasurementState::INVALID | MeasurementState::DEMO_DATA | MeasurementState::MSMT_STATE_IN_ALARM);
        assert_eq!(s.flags(), Flags::INVALID | Flags::DEMO | Flags::ALARM);
        assert!(!s.is_valid());
        assert_eq!(MeasurementState(0x1000).flags(), Flags::CALIBRATING);
        assert_eq!(MeasurementState(0x0800).flags(), Flags::TEST);
        assert_eq!(MeasurementState(0x4000).flags(), Flags::QUESTIONABLE);
        assert_eq!(MeasurementState(0x2000).flags(), Flags::UNAVAILABLE);
        assert_eq!(MeasurementState(0x0020).status(), Status::Preliminary);
        assert_eq!(MeasurementState(0x0040).flags(), Flags::EARLY_ESTIMATE);
        assert_eq!(MeasurementState(0x0080).flags(), Flags::NONE);
        assert!(MeasurementState(0x0080).is_valid());
        assert_eq!(MeasurementState(0).status(), Status::Final);
    }

    #[test]
    fn absolute_time_bcd() {
        let t = AbsoluteTime([0x20, 0x24, 0x03, 0x15, 0x10, 0x22, 0x05, 0x37]);
        let c = t.civil().unwrap().unwrap();
        assert_eq!((c.year, c.month, c.day, c.hour, c.minute, c.second, c.millisecond), (2024, 3, 15, 10, 22, 5, 0));
        assert_eq!(AbsoluteTime::from_civil(&c).0[..7], t.0[..7]);
        assert_eq!(AbsoluteTime::UNSET.civil(), Ok(None));
        assert_eq!(AbsoluteTime([0; 8]).civil(), Ok(None));
        assert!(AbsoluteTime([0x20, 0x2A, 0x03, 0x15, 0, 0, 0, 0]).civil().is_err());
        assert!(AbsoluteTime([0x20, 0x24, 0x13, 0x15, 0, 0, 0, 0]).civil().is_err());
    }

    #[test]
    fn relative_time_wraps_and_is_signed() {
        let a = RelativeTime(u32::MAX - 7);
        let b = RelativeTime(8); // 16 ticks later, across the wrap
        assert_eq!(b.millis_since(a), 2);
        assert_eq!(a.millis_since(b), -2);
        assert_eq!(RelativeTime::from_millis(1000), RelativeTime(8000));
        assert_eq!(RelativeTime(8000).as_millis(), 1000);
        // Sub-millisecond ticks round towards the earlier millisecond.
        assert_eq!(RelativeTime(7).millis_since(RelativeTime(0)), 0);
        assert_eq!(RelativeTime(0).millis_since(RelativeTime(1)), -1);
    }

    #[test]
    fn compound_and_identity_types_round_trip() {
        let vals = [
            NuObsValue { physio_id: 0x4A05, state: MeasurementState(0), unit_code: 0x0F20, value: 120 },
            NuObsValue { physio_id: 0x4A06, state: MeasurementState(0), unit_code: 0x0F20, value: 80 },
        ];
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        NuObsValueCmp::write(&vals, &mut w).unwrap();
        let n = w.len();
        let c = NuObsValueCmp::parse(&buf[..n]).unwrap();
        assert_eq!(c.iter().collect::<alloc::vec::Vec<_>>(), vals);
        assert!(NuObsValueCmp::parse(&[0, 2, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());

        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        SystemModel::write(b"Philips", b"MP70 ", &mut w).unwrap();
        let n = w.len();
        let m = SystemModel::parse(&buf[..n]).unwrap();
        assert_eq!(label_text(m.manufacturer), Some("Philips"));
        assert_eq!(label_text(m.model_number), Some("MP70"));

        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        ProductionSpec::write(
            &[(spec_type::PART_NUMBER, ID_COMP_PRODUCT, b"M8007A"), (spec_type::SERIAL_NUMBER, ID_COMP_PRODUCT, b"DE12345678\0")],
            &mut w,
        )
        .unwrap();
        let n = w.len();
        let p = ProductionSpec::parse(&buf[..n]).unwrap();
        assert_eq!(p.find(spec_type::SERIAL_NUMBER, ID_COMP_PRODUCT).and_then(label_text), Some("DE12345678"));
        assert_eq!(p.find(spec_type::SERIAL_NUMBER, 0x10), None);
        assert!(ProductionSpec::parse(&buf[..n - 1]).is_err());
        assert_eq!(label_text(b"\x01\x02"), None);
        assert_eq!(label_text(b"   "), None);
    }
}
