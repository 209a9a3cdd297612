//! Real-time sample arrays (RTSA, the monitor's waves): the attributes of a wave object in a
//! poll result, and (with `alloc`) the decoder that turns them into [`WaveChunk`]s.
//!
//! ```text
//! SaObsValue        physio_id: u16 | state: u16 (MeasurementState) | array: u16 length (bytes) + bytes
//! SaObsValueCmp     count: u16 | length: u16 | SaObsValue[count]          (compound ECG, 3 × 250 sps)
//! SaSpec            array_size: u16 | sample_size: u8 (bits) | significant_bits: u8 | flags: u16
//! ScaleRangeSpec16  lower_absolute: FLOAT | upper_absolute: FLOAT | lower_scaled: u16 | upper_scaled: u16
//! SaFixedValSpec16  count: u16 | length: u16 | { sa_fixed_val_id: u16, sa_fixed_val: u16 }[count]
//! sample period     NOM_ATTR_TIME_PD_SAMP, a RelativeTime (ticks of 125 µs)
//! ```
//! Source: the *Data Export Interface Programming Guide* rev. G.0 as quoted page by page in
//! public notes (SaSpec and SaFlags p. 83, fixed values pp. 83–84, sample period p. 84 — "never
//! hard-code the rate" —, ScaleRangeSpec16 p. 86 — dynamic context: it may change while the wave
//! runs unless STATIC_SCALE is set —, SaObsValue p. 87 — "valid if the first octet of the state
//! is 0" —, SaObsValueCmp p. 88, volumes and limits pp. 286–287, wave results every 256 ms with
//! `rel_time_stamp` the start of the period p. 62); attribute ids as in VSC and ICE (0x096E,
//! 0x0967, 0x096D, 0x096F, 0x098D, 0x0A16, 0x0996) and hospital-integration.md §3.
//!
//! Interpretation where the guide quotes leave a choice (each covered by a test):
//! - a fixed value is a bit mask; a sample is marked when all bits of the mask are set in it;
//! - with `SA_EXT_VAL_RANGE` the value is the sample's low `significant_bits` (the mask bits are
//!   above them); without it the sample is the value;
//! - `SA_FIX_SATURATION` gives no direction: a saturated sample in the lower half of the range is
//!   marked below it (FHIR `L`), in the upper half above it (`U`);
//! - an absolute value that is not a number (the guide: NaN when the wave has no absolute
//!   meaning) makes the scale the identity on the raw values, dimensionless.

use crate::error::{Error, Result};

use super::attributes::MeasurementState;
use super::pdu::{class, partition, ObjectType};
use super::{Reader, Writer};

/// Attribute ids of wave objects.
pub mod id {
    pub const NOM_ATTR_SA_CMPD_VAL_OBS: u16 = 0x0967;
    pub const NOM_ATTR_SA_RANGE_PHYS_I16: u16 = 0x096A;
    pub const NOM_ATTR_SA_SPECN: u16 = 0x096D;
    pub const NOM_ATTR_SA_VAL_OBS: u16 = 0x096E;
    pub const NOM_ATTR_SCALE_SPECN_I16: u16 = 0x096F;
    pub const NOM_ATTR_TIME_PD_SAMP: u16 = 0x098D;
    pub const NOM_ATTR_UNIT_CODE: u16 = 0x0996;
    pub const NOM_ATTR_SA_FIXED_VAL_SPECN: u16 = 0x0A16;
}

/// The polled object type of a wave poll: real-time sample arrays (NOM_MOC_VMO_METRIC_SA_RT).
/// `pdu::encode_ext_poll_request(.., WAVES, group::ALL)` is the wave poll request; with
/// attribute group 0 each result also carries one object's context every 1024 ms (p. 287).
pub const WAVES: ObjectType = ObjectType { partition: partition::NOM_PART_OBJ, code: class::NOM_MOC_VMO_METRIC_SA_RT };

/// The poll-profile extension option that asks for periodic wave results (POLL_EXT_PERIOD_RTSA,
/// p. 71); it counts only beside a numeric period option such as POLL_EXT_PERIOD_NU_1SEC
/// (0x80000000), and the association result says whether the monitor granted it (p. 72).
pub const POLL_EXT_PERIOD_RTSA: u32 = 0x0800_0000;

/// How often the client polls the waves: the monitor's wave results cover 256 ms each (the
/// guide's table of extended poll result periods, p. 60; `rel_time_stamp` the start of the
/// period, p. 62), 128 samples of a 500 samples/s ECG.
pub const WAVE_POLL_PERIOD_MS: i64 = 256;

/// The wave priority list attribute of the MDS (a TextIdList): which waves the monitor puts in
/// its wave poll results (the guide's priority list SET, pp. 63–64; id 0xF23A = 62010 in VSC,
/// PLUS and a Python client citing p. 63). Entries over the limits (3 ECG + 8 others, pp.
/// 286–287) are dropped by the monitor without a word.
pub const NOM_ATTR_POLL_RTSA_PRIO_LIST: u16 = 0xF23A;
/// At most this many waves: 3 ECG + 8 others (pp. 286–287).
pub const MAX_WAVES: usize = 11;

/// The label TextId of a wave in the SCADA partition: `0x0002_0000 | physio id` (p. 84; VSC's
/// `WavesIDLabels`, e.g. NLS_NOM_PULS_OXIM_PLETH = 0x00024BB4).
pub const fn text_id(physio_id: u16) -> u32 {
    0x0002_0000 | physio_id as u32
}

/// Writes a TextIdList (count u16, length u16, TextId u32 each) of the waves' labels.
pub fn write_text_id_list(w: &mut Writer<'_>, physio_ids: &[u16]) -> Result<()> {
    w.u16(physio_ids.len() as u16)?;
    let at = w.begin_len()?;
    for &p in physio_ids {
        w.u32(text_id(p))?;
    }
    w.end_len(at)
}

/// The physio ids of a TextIdList's SCADA labels (other partitions are skipped).
pub fn text_id_list(bytes: &[u8]) -> Result<impl Iterator<Item = u16> + '_> {
    let mut r = Reader::new(bytes);
    let count = r.u16()?;
    let body = r.counted()?;
    if r.remaining() != 0 || body.len() != count as usize * 4 {
        return Err(Error::BadField { field: "TextIdList length", value: bytes.len() as u32 });
    }
    Ok(body.chunks_exact(4).filter_map(|c| match *c {
        [0x00, 0x02, a, b] => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }))
}

/// A wave by the name a configuration uses (`ecg-ii`, `pleth`, ...), as a physio id.
pub fn physio_by_name(name: &str) -> Option<u16> {
    Some(match name {
        "ecg-i" => physio::NOM_ECG_ELEC_POTL_I,
        "ecg-ii" => physio::NOM_ECG_ELEC_POTL_II,
        "ecg-iii" => physio::NOM_ECG_ELEC_POTL_III,
        "pleth" => physio::NOM_PLETH,
        "abp" => physio::NOM_PRESS_BLD_ART_ABP,
        "resp" => physio::NOM_RESP,
        _ => return None,
    })
}

/// Physio ids of waves medgw names (SCADA partition: the MDC code is 0x20000 | id).
pub mod physio {
    pub const NOM_ECG_ELEC_POTL_I: u16 = 0x0101;
    pub const NOM_ECG_ELEC_POTL_II: u16 = 0x0102;
    pub const NOM_ECG_ELEC_POTL_III: u16 = 0x013D;
    pub const NOM_PLETH: u16 = 0x4BB4;
    pub const NOM_PRESS_BLD_ART_ABP: u16 = 0x4A14;
    pub const NOM_RESP: u16 = 0x5000;
}

/// SaObsValue (p. 87).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaObsValue<'a> {
    pub physio_id: u16,
    pub state: MeasurementState,
    /// The sample bytes; `length` counts bytes, not samples (p. 87).
    pub array: &'a [u8],
}

impl<'a> SaObsValue<'a> {
    pub fn read(r: &mut Reader<'a>) -> Result<SaObsValue<'a>> {
        Ok(SaObsValue { physio_id: r.u16()?, state: MeasurementState(r.u16()?), array: r.counted()? })
    }

    /// Parses a NOM_ATTR_SA_VAL_OBS value (exactly one SaObsValue).
    pub fn parse(bytes: &'a [u8]) -> Result<SaObsValue<'a>> {
        let mut r = Reader::new(bytes);
        let v = SaObsValue::read(&mut r)?;
        if r.remaining() != 0 {
            return Err(Error::BadField { field: "SaObsValue length", value: bytes.len() as u32 });
        }
        Ok(v)
    }

    pub fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.physio_id)?;
        w.u16(self.state.0)?;
        let at = w.begin_len()?;
        w.put(self.array)?;
        w.end_len(at)
    }

    /// The raw samples for a sample size in bits (8 or 16, big-endian); an array whose length
    /// is not a whole number of samples is refused.
    pub fn samples(&self, sample_bits: u8) -> Result<impl Iterator<Item = u16> + 'a> {
        let size = match sample_bits {
            8 => 1,
            16 => 2,
            other => return Err(Error::Unsupported { what: "intellivue sample size", value: other as u32 }),
        };
        if self.array.len() % size != 0 {
            return Err(Error::BadField { field: "SaObsValue array length", value: self.array.len() as u32 });
        }
        Ok(self.array.chunks_exact(size).map(|c| match *c {
            [a, b] => u16::from_be_bytes([a, b]),
            [a] => a as u16,
            _ => 0,
        }))
    }
}

/// SaObsValueCmp (p. 88): the compound ECG's leads, one SaObsValue each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaObsValueCmp<'a> {
    pub count: u16,
    body: &'a [u8],
}

impl<'a> SaObsValueCmp<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<SaObsValueCmp<'a>> {
        let mut r = Reader::new(bytes);
        let count = r.u16()?;
        let body = r.counted()?;
        if r.remaining() != 0 {
            return Err(Error::BadField { field: "SaObsValueCmp length", value: bytes.len() as u32 });
        }
        let v = SaObsValueCmp { count, body };
        for item in v.iter() {
            item?;
        }
        Ok(v)
    }

    pub fn iter(&self) -> impl Iterator<Item = Result<SaObsValue<'a>>> + 'a {
        super::counted_items(self.body, self.count, "SaObsValueCmp length", SaObsValue::read)
    }
}

/// SaSpec (p. 83).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaSpec {
    /// Samples per array.
    pub array_size: u16,
    /// Bits per sample (8 or 16).
    pub sample_size: u8,
    pub significant_bits: u8,
    pub flags: u16,
}

impl SaSpec {
    pub const SMOOTH_CURVE: u16 = 0x8000;
    pub const DELAYED_CURVE: u16 = 0x4000;
    /// The scale does not change.
    pub const STATIC_SCALE: u16 = 0x2000;
    /// The non-significant bits of a sample must be masked.
    pub const SA_EXT_VAL_RANGE: u16 = 0x1000;
    pub const LEN: usize = 6;

    pub fn parse(bytes: &[u8]) -> Result<SaSpec> {
        if bytes.len() != Self::LEN {
            return Err(Error::BadField { field: "SaSpec length", value: bytes.len() as u32 });
        }
        let mut r = Reader::new(bytes);
        let spec = SaSpec { array_size: r.u16()?, sample_size: r.u8()?, significant_bits: r.u8()?, flags: r.u16()? };
        if spec.significant_bits == 0 || spec.significant_bits > spec.sample_size {
            return Err(Error::BadField { field: "SaSpec significant bits", value: spec.significant_bits as u32 });
        }
        Ok(spec)
    }

    pub fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.array_size)?;
        w.u8(self.sample_size)?;
        w.u8(self.significant_bits)?;
        w.u16(self.flags)
    }

    /// The value bits of a sample.
    pub fn value_mask(&self) -> u16 {
        if self.significant_bits >= 16 {
            0xFFFF
        } else {
            (1u16 << self.significant_bits) - 1
        }
    }

    /// The sample's value: the significant bits when SA_EXT_VAL_RANGE says the others are
    /// not part of it.
    pub fn value(&self, sample: u16) -> u16 {
        if self.flags & Self::SA_EXT_VAL_RANGE != 0 {
            sample & self.value_mask()
        } else {
            sample
        }
    }
}

/// ScaleRangeSpec16 (p. 86): the absolute values at two scaled values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleRangeSpec16 {
    /// FLOAT-Type, raw; decode with [`crate::wire::sfloat::float`].
    pub lower_absolute: u32,
    pub upper_absolute: u32,
    pub lower_scaled: u16,
    pub upper_scaled: u16,
}

impl ScaleRangeSpec16 {
    pub const LEN: usize = 12;

    pub fn parse(bytes: &[u8]) -> Result<ScaleRangeSpec16> {
        if bytes.len() != Self::LEN {
            return Err(Error::BadField { field: "ScaleRangeSpec16 length", value: bytes.len() as u32 });
        }
        let mut r = Reader::new(bytes);
        Ok(ScaleRangeSpec16 { lower_absolute: r.u32()?, upper_absolute: r.u32()?, lower_scaled: r.u16()?, upper_scaled: r.u16()? })
    }

    pub fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u32(self.lower_absolute)?;
        w.u32(self.upper_absolute)?;
        w.u16(self.lower_scaled)?;
        w.u16(self.upper_scaled)
    }
}

/// SaFixedValId (pp. 83–84).
pub mod fixed {
    pub const SA_FIX_UNSPEC: u16 = 0;
    pub const SA_FIX_INVALID_MASK: u16 = 1;
    pub const SA_FIX_PACER_MASK: u16 = 2;
    pub const SA_FIX_DEFIB_MARKER_MASK: u16 = 3;
    pub const SA_FIX_SATURATION: u16 = 4;
    pub const SA_FIX_QRS_MASK: u16 = 5;
}

/// One SaFixedValSpecEntry16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedValue {
    pub id: u16,
    pub value: u16,
}

/// The entries of a SaFixedValSpec16 (pp. 83–84).
pub fn fixed_values(bytes: &[u8]) -> Result<impl Iterator<Item = FixedValue> + '_> {
    let mut r = Reader::new(bytes);
    let count = r.u16()?;
    let body = r.counted()?;
    if r.remaining() != 0 || body.len() != count as usize * 4 {
        return Err(Error::BadField { field: "SaFixedValSpec16 length", value: bytes.len() as u32 });
    }
    Ok(body.chunks_exact(4).map(|c| match *c {
        [a, b, x, y] => FixedValue { id: u16::from_be_bytes([a, b]), value: u16::from_be_bytes([x, y]) },
        _ => FixedValue { id: 0, value: 0 },
    }))
}

/// Writes a SaFixedValSpec16.
pub fn write_fixed_values(w: &mut Writer<'_>, entries: &[FixedValue]) -> Result<()> {
    w.u16(entries.len() as u16)?;
    let at = w.begin_len()?;
    for e in entries {
        w.u16(e.id)?;
        w.u16(e.value)?;
    }
    w.end_len(at)
}

#[cfg(feature = "alloc")]
pub use decoder::RtsaDecoder;

#[cfg(feature = "alloc")]
mod decoder {
    use alloc::vec::Vec;

    use super::super::attributes::{AttributeList, RelativeTime};
    use super::super::nomenclature::{unit as mdc_unit_of, PRIVATE_TERM};
    use super::super::pdu::PollReply;
    use super::*;
    use crate::mdc::{unit, MdcCode};
    use crate::time::Timestamp;
    use crate::wave::{Continuity, SampleMarks, SamplePeriod, WaveChunk, WaveScale};
    use crate::wire::sfloat::float;

    /// The context of one wave object, gathered from whichever poll results carried it (the
    /// monitor sends one object's context every 1024 ms when the poll asks for all attributes,
    /// p. 287).
    #[derive(Debug, Clone, Default)]
    struct Context {
        handle: u16,
        period_ticks: Option<u32>,
        spec: Option<SaSpec>,
        scale: Option<ScaleRangeSpec16>,
        unit: Option<u16>,
        masks: Vec<FixedValue>,
    }

    /// Where a wave (by physio id) stands: the relative time its next sample is due.
    #[derive(Debug, Clone, Copy)]
    struct Stream {
        physio_id: u16,
        next: RelativeTime,
    }

    /// Turns the wave objects of RTSA poll results into [`WaveChunk`]s, keeping each object's
    /// static and dynamic context (sample period, SaSpec, fixed values, unit, scale) as it comes
    /// and each wave's continuity by the results' relative time stamps (p. 287: the client must
    /// follow the time stamps to see missing samples).
    #[derive(Debug, Default)]
    pub struct RtsaDecoder {
        objects: Vec<Context>,
        streams: Vec<Stream>,
    }

    /// Objects kept at most: the monitor sends at most 3 ECG + 8 other waves (p. 286); the rest
    /// is room for objects that come and go.
    const MAX_OBJECTS: usize = 32;

    impl RtsaDecoder {
        pub fn new() -> RtsaDecoder {
            RtsaDecoder::default()
        }

        /// Forgets everything (a new association: handles may differ).
        pub fn reset(&mut self) {
            self.objects.clear();
            self.streams.clear();
        }

        /// Decodes one wave object of a poll result. `rel_time` is the result's relative time
        /// stamp (the start of the 256 ms period, p. 62) and `start` the same instant on the
        /// gateway's clock. Context attributes update the object; each sample array becomes a
        /// chunk in `out`. An array whose context is not yet known cannot be scaled or timed
        /// and is refused (`Error::Unconfirmed`, with the count of such arrays); the wave then
        /// continues after a gap.
        pub fn observation(
            &mut self,
            handle: u16,
            attrs: &AttributeList<'_>,
            rel_time: RelativeTime,
            start: Timestamp,
            out: &mut Vec<WaveChunk>,
        ) -> Result<()> {
            let i = match self.objects.iter().position(|o| o.handle == handle) {
                Some(i) => i,
                None => {
                    if self.objects.len() >= MAX_OBJECTS {
                        self.objects.remove(0);
                    }
                    self.objects.push(Context { handle, ..Context::default() });
                    self.objects.len() - 1
                }
            };
            let ctx = self.objects.get_mut(i).ok_or(Error::Payload("wave object"))?;
            for ava in attrs.iter() {
                let ava = ava?;
                match ava.id {
                    id::NOM_ATTR_TIME_PD_SAMP => {
                        let t = RelativeTime::read(&mut Reader::new(ava.value))?;
                        if t.0 == 0 {
                            return Err(Error::BadField { field: "intellivue sample period", value: 0 });
                        }
                        ctx.period_ticks = Some(t.0);
                    }
                    id::NOM_ATTR_SA_SPECN => ctx.spec = Some(SaSpec::parse(ava.value)?),
                    id::NOM_ATTR_SCALE_SPECN_I16 => ctx.scale = Some(ScaleRangeSpec16::parse(ava.value)?),
                    id::NOM_ATTR_UNIT_CODE => ctx.unit = Some(Reader::new(ava.value).u16()?),
                    id::NOM_ATTR_SA_FIXED_VAL_SPECN => ctx.masks = fixed_values(ava.value)?.collect(),
                    _ => {}
                }
            }
            let ctx = ctx.clone();
            let mut unconfirmed = 0usize;
            for ava in attrs.iter() {
                let ava = ava?;
                match ava.id {
                    id::NOM_ATTR_SA_VAL_OBS => {
                        let v = SaObsValue::parse(ava.value)?;
                        unconfirmed += self.array(&ctx, &v, rel_time, start, out)?;
                    }
                    id::NOM_ATTR_SA_CMPD_VAL_OBS => {
                        for v in SaObsValueCmp::parse(ava.value)?.iter() {
                            unconfirmed += self.array(&ctx, &v?, rel_time, start, out)?;
                        }
                    }
                    _ => {}
                }
            }
            if unconfirmed > 0 {
                return Err(Error::Unconfirmed { frames: unconfirmed });
            }
            Ok(())
        }

        /// Decodes every wave object of a wave poll result. `to_time` places a relative time
        /// on the gateway's clock (the client's MDS clock reference). Objects are decoded
        /// independently: one that fails does not cost the others their samples; the first
        /// error is returned after all were tried.
        pub fn poll_result(
            &mut self,
            reply: &PollReply<'_>,
            to_time: impl Fn(RelativeTime) -> Timestamp,
            out: &mut Vec<WaveChunk>,
        ) -> Result<()> {
            let start = to_time(reply.rel_time);
            let mut first = None;
            for o in reply.info.observations() {
                let r = o.and_then(|(_, o)| self.observation(o.handle, &o.attributes, reply.rel_time, start, out));
                if let (Err(e), None) = (r, &first) {
                    first = Some(e);
                }
            }
            first.map_or(Ok(()), Err)
        }

        /// One sample array; returns 1 if it was refused for want of context.
        fn array(
            &mut self,
            ctx: &Context,
            v: &SaObsValue<'_>,
            rel_time: RelativeTime,
            start: Timestamp,
            out: &mut Vec<WaveChunk>,
        ) -> Result<usize> {
            let (Some(ticks), Some(spec), Some(scale)) = (ctx.period_ticks, ctx.spec, ctx.scale) else {
                self.streams.retain(|s| s.physio_id != v.physio_id);
                return Ok(1);
            };
            if v.physio_id >= PRIVATE_TERM {
                return Err(Error::Unsupported { what: "intellivue private wave", value: v.physio_id as u32 });
            }
            let period = SamplePeriod::from_micros(ticks.saturating_mul(125));
            let wave_scale = wave_scale(&spec, &scale, ctx.unit);
            let mid = (wave_scale.min_raw + wave_scale.max_raw) / 2;
            let state_invalid = !v.state.is_valid();
            let mut samples = Vec::new();
            let mut marks = Vec::new();
            for raw in v.samples(spec.sample_size)? {
                let value = spec.value(raw) as i32;
                let mut m = if state_invalid { SampleMarks::INVALID } else { SampleMarks::NONE };
                for f in &ctx.masks {
                    if f.value == 0 || raw & f.value != f.value {
                        continue;
                    }
                    m = m.union(match f.id {
                        fixed::SA_FIX_INVALID_MASK => SampleMarks::INVALID,
                        fixed::SA_FIX_PACER_MASK => SampleMarks::PACER,
                        fixed::SA_FIX_DEFIB_MARKER_MASK => SampleMarks::DEFIB,
                        fixed::SA_FIX_QRS_MASK => SampleMarks::QRS,
                        fixed::SA_FIX_SATURATION if value <= mid => SampleMarks::BELOW,
                        fixed::SA_FIX_SATURATION => SampleMarks::ABOVE,
                        _ => SampleMarks::NONE,
                    });
                }
                if !m.is_empty() || !marks.is_empty() {
                    marks.resize(samples.len(), SampleMarks::NONE);
                    marks.push(m);
                }
                samples.push(value);
            }
            // Continuity from the relative time stamps: the array should start where the
            // previous one of this wave ended.
            let n = samples.len() as u32;
            let continuity = match self.streams.iter().find(|s| s.physio_id == v.physio_id) {
                None => Continuity::Broken,
                Some(s) => {
                    let late = rel_time.0.wrapping_sub(s.next.0) as i32 as i64;
                    let half = (ticks / 2) as i64;
                    if late.abs() <= half {
                        Continuity::Continuous
                    } else if late > 0 {
                        let k = (late + half) / ticks as i64;
                        u32::try_from(k).map(Continuity::Lost).unwrap_or(Continuity::Broken)
                    } else {
                        Continuity::Broken
                    }
                }
            };
            let next = RelativeTime(rel_time.0.wrapping_add(n.saturating_mul(ticks)));
            match self.streams.iter_mut().find(|s| s.physio_id == v.physio_id) {
                Some(s) => s.next = next,
                None => self.streams.push(Stream { physio_id: v.physio_id, next }),
            }
            out.push(WaveChunk {
                metric: MdcCode::scada(v.physio_id),
                period,
                scale: wave_scale,
                start,
                continuity,
                flags: v.state.flags(),
                samples,
                marks,
            });
            Ok(0)
        }
    }

    /// The wave's scale from ScaleRangeSpec16: identity and dimensionless when an absolute
    /// value is not a number; the raw range is what the significant bits can hold.
    fn wave_scale(spec: &SaSpec, s: &ScaleRangeSpec16, unit_code: Option<u16>) -> WaveScale {
        let max_raw = spec.value_mask() as i32;
        let (lower, upper) = (float(s.lower_absolute).number(), float(s.upper_absolute).number());
        match (lower, upper) {
            (Some(lower), Some(upper)) if s.lower_scaled != s.upper_scaled => WaveScale {
                unit: unit_code.map(mdc_unit_of).unwrap_or(unit::MDC_DIM_DIMLESS),
                lower_raw: s.lower_scaled as i32,
                upper_raw: s.upper_scaled as i32,
                lower,
                upper,
                min_raw: 0,
                max_raw,
            },
            _ => WaveScale::identity(unit::MDC_DIM_DIMLESS, 0, max_raw),
        }
    }
}
