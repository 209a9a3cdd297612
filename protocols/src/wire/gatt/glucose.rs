//! Glucose Measurement (0x2A18) and the Record Access Control Point (0x2A52), Glucose Service.
//!
//! ```text
//! org.bluetooth.characteristic.glucose_measurement:
//! +-------+---------+-------------+-----------------+-----------------------------+--------------+
//! | flags | seq u16 | base time 7 | [offset s16 min]| [conc SFLOAT][type|location]| [status u16] |
//! +-------+---------+-------------+-----------------+-----------------------------+--------------+
//! flags bit 0 time offset; 1 concentration + type-sample location; 2 units: 0 = kg/L,
//!       1 = mol/L; 3 sensor status annunciation; 4 context information follows (in a Glucose
//!       Measurement Context value, not here); 5-7 reserved
//! type-sample location octet:  bits 7..4 = sample location | bits 3..0 = type
//! ```
//! The time offset is a plain signed count of minutes: the XML's "overrun" (0x7FFF) and
//! "underrun" (0x8000) enumerations are commented out of the approved definition, so they are
//! not treated as specials here.
//! The nibble order is settled by the XML's own note: nibble fields are "shown in the order of
//! Least Significant Nibble first ... the Least Significant Nibble means the four bits numbered
//! 0, 1, 2 and 3"; Type is listed before Sample Location, so the type is the low nibble. Nordic's
//! Android BLE library reads it the same way (`type = b & 0x0F`, `location = b >> 4`). At least
//! one public parser reads it the other way round. GP-8's octet 0x11 cannot tell the two apart,
//! so the tests pin the reading with an octet whose nibbles differ (0x25: type 5, location 2).
//!
//! Type: 1 capillary whole blood, 2 capillary plasma, 3 venous whole blood, 4 venous plasma,
//! 5 arterial whole blood, 6 arterial plasma, 7 undetermined whole blood, 8 undetermined
//! plasma, 9 interstitial fluid, 10 control solution; 0, 11-15 reserved.
//! Sample location: 1 finger, 2 alternate site test, 3 earlobe, 4 control solution,
//! 15 not available; 0, 5-14 reserved.
//! Sensor status annunciation bits: 0 battery low, 1 sensor malfunction, 2 sample size
//! insufficient, 3 strip insertion error, 4 strip type incorrect, 5 result higher than the
//! device can process, 6 result lower than the device can process, 7 sensor temperature too
//! high, 8 too low, 9 read interrupted (strip pulled too soon), 10 general device fault,
//! 11 time fault (time may be inaccurate); 12-15 reserved.
//!
//! The Record Access Control Point (org.bluetooth.characteristic.record_access_control_point):
//! ```text
//! +---------+----------+-----------------------------+
//! | op code | operator | operand (per op and service)|
//! +---------+----------+-----------------------------+
//! op codes: 1 report stored records, 2 delete stored records, 3 abort, 4 report number of
//!   stored records, 5 number of stored records response (operand u16), 6 response code
//!   (operand: request op code, response code value)
//! operators: 0 null, 1 all, 2 <=, 3 >=, 4 within range (inclusive), 5 first, 6 last
//! Glucose Service filter operand for <=, >=, range: filter type (1 sequence number,
//!   2 user facing time = base time + offset) then the bound(s): u16, or Date Time (7 bytes)
//! response codes: 1 success, 2 op code not supported, 3 invalid operator, 4 operator not
//!   supported, 5 invalid operand, 6 no records found, 7 abort unsuccessful, 8 procedure not
//!   completed, 9 operand not supported
//! ```

use crate::error::{Error, Result};
use crate::mdc::MdcCode;
use crate::quality::Flags;

use super::date_time::DateTime;
use super::{check_len, flags_of, le16, opt, u8_at, Sfloat, Writer};

pub const FLAG_TIME_OFFSET: u8 = 0x01;
pub const FLAG_CONCENTRATION: u8 = 0x02;
pub const FLAG_MOL_PER_L: u8 = 0x04;
pub const FLAG_STATUS: u8 = 0x08;
pub const FLAG_CONTEXT_FOLLOWS: u8 = 0x10;

/// Sample type "control solution": a quality-control test, not a patient's value.
pub const TYPE_CONTROL_SOLUTION: u8 = 10;
/// Sample location "control solution".
pub const LOCATION_CONTROL_SOLUTION: u8 = 4;

/// IEEE 11073-10417 glucose codes (partition 2), by GATT sample type. Term codes from public
/// copies of the 10417 nomenclature (several consistent C and Java headers);
/// MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD (29112) is in `crate::mdc`, the others are not yet.
pub mod mdc_glu {
    use crate::mdc::MdcCode;
    pub const MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD: MdcCode = MdcCode::scada(29112); // 160184
    pub const MDC_CONC_GLU_CAPILLARY_PLASMA: MdcCode = MdcCode::scada(29116); // 160188
    pub const MDC_CONC_GLU_VENOUS_WHOLEBLOOD: MdcCode = MdcCode::scada(29120); // 160192
    pub const MDC_CONC_GLU_VENOUS_PLASMA: MdcCode = MdcCode::scada(29124); // 160196
    pub const MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD: MdcCode = MdcCode::scada(29128); // 160200
    pub const MDC_CONC_GLU_ARTERIAL_PLASMA: MdcCode = MdcCode::scada(29132); // 160204
    pub const MDC_CONC_GLU_CONTROL: MdcCode = MdcCode::scada(29136); // 160208
    pub const MDC_CONC_GLU_ISF: MdcCode = MdcCode::scada(29140); // 160212
    pub const MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD: MdcCode = MdcCode::scada(29292); // 160364
    pub const MDC_CONC_GLU_UNDETERMINED_PLASMA: MdcCode = MdcCode::scada(29296);
    // 160368
}

/// The 10417 metric of a GATT sample type; `None` for the reserved values 0 and 11–15.
pub fn metric_for_type(sample_type: u8) -> Option<MdcCode> {
    use mdc_glu::*;
    Some(match sample_type {
        1 => MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD,
        2 => MDC_CONC_GLU_CAPILLARY_PLASMA,
        3 => MDC_CONC_GLU_VENOUS_WHOLEBLOOD,
        4 => MDC_CONC_GLU_VENOUS_PLASMA,
        5 => MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD,
        6 => MDC_CONC_GLU_ARTERIAL_PLASMA,
        7 => MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD,
        8 => MDC_CONC_GLU_UNDETERMINED_PLASMA,
        9 => MDC_CONC_GLU_ISF,
        10 => MDC_CONC_GLU_CONTROL,
        _ => return None,
    })
}

/// Sensor Status Annunciation (16 bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SensorStatus(pub u16);

impl SensorStatus {
    pub const BATTERY_LOW: u16 = 1 << 0;
    pub const SENSOR_MALFUNCTION: u16 = 1 << 1;
    pub const SAMPLE_INSUFFICIENT: u16 = 1 << 2;
    pub const STRIP_INSERTION_ERROR: u16 = 1 << 3;
    pub const STRIP_TYPE_INCORRECT: u16 = 1 << 4;
    pub const RESULT_TOO_HIGH: u16 = 1 << 5;
    pub const RESULT_TOO_LOW: u16 = 1 << 6;
    pub const TEMPERATURE_TOO_HIGH: u16 = 1 << 7;
    pub const TEMPERATURE_TOO_LOW: u16 = 1 << 8;
    pub const STRIP_PULLED_TOO_SOON: u16 = 1 << 9;
    pub const DEVICE_FAULT: u16 = 1 << 10;
    pub const TIME_FAULT: u16 = 1 << 11;

    /// The quality flags the annunciations state:
    /// - battery low → LOW_BATTERY;
    /// - sensor malfunction, insufficient sample, strip insertion error, wrong strip type,
    ///   strip pulled too soon, general device fault → INVALID (the meter reports a fault of
    ///   this test; if it still sent a number, the number is kept as sent and marked);
    /// - result higher / lower than the device can process → OUT_OF_RANGE;
    /// - sensor temperature too high / too low → QUESTIONABLE (the result may be inaccurate);
    /// - time fault ("time may be inaccurate") → CLOCK_NOT_SET, so the effective time does not
    ///   rely on the meter's clock.
    ///
    /// Reserved bits 12–15 are ignored.
    pub fn flags(self) -> Flags {
        let mut f = Flags::NONE;
        for (bit, flag) in [
            (Self::BATTERY_LOW, Flags::LOW_BATTERY),
            (Self::SENSOR_MALFUNCTION, Flags::INVALID),
            (Self::SAMPLE_INSUFFICIENT, Flags::INVALID),
            (Self::STRIP_INSERTION_ERROR, Flags::INVALID),
            (Self::STRIP_TYPE_INCORRECT, Flags::INVALID),
            (Self::RESULT_TOO_HIGH, Flags::OUT_OF_RANGE),
            (Self::RESULT_TOO_LOW, Flags::OUT_OF_RANGE),
            (Self::TEMPERATURE_TOO_HIGH, Flags::QUESTIONABLE),
            (Self::TEMPERATURE_TOO_LOW, Flags::QUESTIONABLE),
            (Self::STRIP_PULLED_TOO_SOON, Flags::INVALID),
            (Self::DEVICE_FAULT, Flags::INVALID),
            (Self::TIME_FAULT, Flags::CLOCK_NOT_SET),
        ] {
            if self.0 & bit != 0 {
                f |= flag;
            }
        }
        f
    }
}

/// Concentration with its sample type and location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concentration {
    /// kg/L or mol/L per the flags.
    pub value: Sfloat,
    /// Low nibble of the type-sample location octet.
    pub sample_type: u8,
    /// High nibble.
    pub location: u8,
}

impl Concentration {
    /// The type-sample location octet.
    pub fn type_location_octet(&self) -> u8 {
        (self.location << 4) | (self.sample_type & 0x0F)
    }
}

/// Checked view of a Glucose Measurement.
#[derive(Clone, Copy, Debug)]
pub struct GlucoseView<'a> {
    buf: &'a [u8],
}

impl<'a> GlucoseView<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<GlucoseView<'a>> {
        let flags = flags_of(buf)?;
        check_len(buf, Self::required_len(flags))?;
        Ok(GlucoseView { buf })
    }

    pub const fn required_len(flags: u8) -> usize {
        let at = opt(10, flags & FLAG_TIME_OFFSET != 0, 2);
        let at = opt(at, flags & FLAG_CONCENTRATION != 0, 3);
        opt(at, flags & FLAG_STATUS != 0, 2)
    }

    pub fn flags(&self) -> u8 {
        u8_at(self.buf, 0)
    }

    pub fn extra_len(&self) -> usize {
        self.buf.len().saturating_sub(Self::required_len(self.flags()))
    }

    pub fn parse(&self) -> Result<Glucose> {
        let (b, f) = (self.buf, self.flags());
        let base_time = DateTime::parse(b.get(3..).unwrap_or(&[]))?;
        let mut at = 10;
        let time_offset = (f & FLAG_TIME_OFFSET != 0).then(|| le16(b, at) as i16);
        at = opt(at, time_offset.is_some(), 2);
        let concentration = (f & FLAG_CONCENTRATION != 0).then(|| {
            let tl = u8_at(b, at + 2);
            Concentration { value: Sfloat(le16(b, at)), sample_type: tl & 0x0F, location: tl >> 4 }
        });
        at = opt(at, concentration.is_some(), 3);
        let status = (f & FLAG_STATUS != 0).then(|| SensorStatus(le16(b, at)));
        Ok(Glucose { flags: f, sequence: le16(b, 1), base_time, time_offset, concentration, status })
    }
}

/// A validated Glucose Measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Glucose {
    /// The flags byte as sent (units, context-follows and reserved bits kept for `emit`).
    pub flags: u8,
    pub sequence: u16,
    pub base_time: DateTime,
    /// Minutes to add to the base time for the user-facing time.
    pub time_offset: Option<i16>,
    pub concentration: Option<Concentration>,
    pub status: Option<SensorStatus>,
}

impl Glucose {
    pub fn parse(buf: &[u8]) -> Result<Glucose> {
        GlucoseView::new_checked(buf)?.parse()
    }

    pub fn is_mol_per_l(&self) -> bool {
        self.flags & FLAG_MOL_PER_L != 0
    }

    pub fn context_follows(&self) -> bool {
        self.flags & FLAG_CONTEXT_FOLLOWS != 0
    }

    /// The user-facing time (base time + offset) as local device time; none when the base
    /// time is not known.
    pub fn device_time(&self) -> Option<crate::time::DeviceTime> {
        let base = self.base_time.to_timestamp()?;
        let offset_ms = self.time_offset.unwrap_or(0) as i64 * 60_000;
        Some(crate::time::DeviceTime::Local(crate::time::Timestamp(base.0 + offset_ms)))
    }

    /// The concentration in the unit people read, converted exactly by moving the decimal
    /// point: 1 kg/L = 10^6 mg / 10 dL = 10^5 mg/dL, 1 mol/L = 10^3 mmol/L. Returns the value
    /// and MDC_DIM_MILLI_G_PER_DL or MDC_DIM_MILLI_MOLE_PER_L; specials stay absent.
    pub fn concentration_value(&self) -> Option<(core::result::Result<crate::decimal::Decimal, crate::quality::AbsentReason>, MdcCode)> {
        let c = self.concentration?;
        let (shift, unit) = if self.is_mol_per_l() {
            (3, crate::mdc::unit::MDC_DIM_MILLI_MOLE_PER_L)
        } else {
            (5, crate::mdc::unit::MDC_DIM_MILLI_G_PER_DL)
        };
        let v = c.value.value().to_result().and_then(|d| {
            // SFLOAT exponents are -8..=7, so the shifted exponent (-5..=12) always fits.
            crate::decimal::Decimal::new(d.mantissa(), d.exponent() + shift).ok_or(crate::quality::AbsentReason::Reserved)
        });
        Some((v, unit))
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut f = self.flags & !(FLAG_TIME_OFFSET | FLAG_CONCENTRATION | FLAG_STATUS);
        for (present, bit) in [
            (self.time_offset.is_some(), FLAG_TIME_OFFSET),
            (self.concentration.is_some(), FLAG_CONCENTRATION),
            (self.status.is_some(), FLAG_STATUS),
        ] {
            if present {
                f |= bit;
            }
        }
        let mut w = Writer::new(out);
        w.u8(f)?;
        w.u16(self.sequence)?;
        self.base_time.write(&mut w)?;
        if let Some(o) = self.time_offset {
            w.u16(o as u16)?;
        }
        if let Some(c) = &self.concentration {
            if c.sample_type > 0x0F || c.location > 0x0F {
                return Err(Error::BadField { field: "glucose type-sample location nibble", value: c.sample_type.max(c.location) as u32 });
            }
            w.u16(c.value.0)?;
            w.u8(c.type_location_octet())?;
        }
        if let Some(s) = self.status {
            w.u16(s.0)?;
        }
        Ok(w.len())
    }

    /// One glucose measurement with the sequence number as `seq` and the user-facing time:
    /// - metric by sample type from 11073-10417 ([`metric_for_type`]); a reserved type, or a
    ///   record without a concentration, keeps MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD (the common
    ///   meter case) and no flag is invented for it; the type and location are kept as the
    ///   vendor code `gatt` / `2A18.type.<t>.location.<l>` so nothing the meter said is lost;
    /// - value in mg/dL or mmol/L ([`Glucose::concentration_value`]); no concentration is an
    ///   absent value (`Unavailable`), e.g. a record of a failed strip;
    /// - control solution (type 10 or location 4) adds TEST: a quality-control run is never a
    ///   patient's value;
    /// - sensor status annunciation flags ([`SensorStatus::flags`]).
    #[cfg(feature = "alloc")]
    pub fn measurements(&self, out: &mut alloc::vec::Vec<crate::observation::Measurement>) {
        self.for_each_measurement(&mut |m| out.push(m));
    }

    /// [`Self::measurements`], handing each measurement to `out` (no intermediate vector).
    #[cfg(feature = "alloc")]
    pub fn for_each_measurement<F: FnMut(crate::observation::Measurement) + ?Sized>(&self, out: &mut F) {
        use crate::quality::AbsentReason;
        let c = self.concentration;
        let metric = c.and_then(|c| metric_for_type(c.sample_type)).unwrap_or(mdc_glu::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD);
        let (value, unit) = self.concentration_value().unwrap_or((
            Err(AbsentReason::Unavailable),
            if self.is_mol_per_l() { crate::mdc::unit::MDC_DIM_MILLI_MOLE_PER_L } else { crate::mdc::unit::MDC_DIM_MILLI_G_PER_DL },
        ));
        let mut m = super::norm::from_result(metric, value, unit)
            .with_flags(self.status.unwrap_or_default().flags())
            .with_seq(Some(self.sequence as u32))
            .with_time(self.device_time());
        if let Some(c) = c {
            if c.sample_type == TYPE_CONTROL_SOLUTION || c.location == LOCATION_CONTROL_SOLUTION {
                m = m.with_flags(Flags::TEST);
            }
            let code = GLUCOSE_VENDOR_CODES.get(c.sample_type as usize).and_then(|row| row.get(c.location as usize));
            m = match code {
                Some(code) => m.with_static_vendor(code),
                None => m.with_vendor("gatt", alloc::format!("2A18.type.{}.location.{}", c.sample_type, c.location)),
            };
        }
        out(m);
    }
}

#[cfg(feature = "alloc")]
macro_rules! glucose_vendor_codes {
    ($($t:literal)*) => { [$( glucose_vendor_codes!(@row $t 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15) ),*] };
    (@row $t:literal $($l:literal)*) => {
        [$( crate::observation::VendorCode::new_static("gatt", concat!("2A18.type.", $t, ".location.", $l)) ),*]
    };
}

/// The vendor codes `2A18.type.<t>.location.<l>`, by [type][location], as statics so that
/// decoding a value neither formats text nor allocates.
#[cfg(feature = "alloc")]
static GLUCOSE_VENDOR_CODES: [[crate::observation::VendorCode; 16]; 16] = glucose_vendor_codes!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);

/// RACP op codes.
pub mod racp_op {
    pub const REPORT_STORED_RECORDS: u8 = 1;
    pub const DELETE_STORED_RECORDS: u8 = 2;
    pub const ABORT: u8 = 3;
    pub const REPORT_NUMBER_OF_RECORDS: u8 = 4;
    pub const NUMBER_OF_RECORDS_RESPONSE: u8 = 5;
    pub const RESPONSE_CODE: u8 = 6;
}

/// RACP operators.
pub mod racp_operator {
    pub const NULL: u8 = 0;
    pub const ALL: u8 = 1;
    pub const LESS_OR_EQUAL: u8 = 2;
    pub const GREATER_OR_EQUAL: u8 = 3;
    pub const WITHIN_RANGE: u8 = 4;
    pub const FIRST: u8 = 5;
    pub const LAST: u8 = 6;
}

/// Glucose Service RACP filter types.
pub const FILTER_SEQUENCE_NUMBER: u8 = 1;
pub const FILTER_USER_FACING_TIME: u8 = 2;

/// A bound of a record filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Sequence(u16),
    /// User facing time (base time + time offset).
    Time(DateTime),
}

/// Which records a request applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFilter {
    All,
    First,
    Last,
    AtMost(Bound),
    AtLeast(Bound),
    /// Inclusive; both bounds of the same kind.
    Range(Bound, Bound),
}

/// A request written to the RACP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RacpRequest {
    ReportStoredRecords(RecordFilter),
    DeleteStoredRecords(RecordFilter),
    Abort,
    ReportNumberOfRecords(RecordFilter),
}

fn write_bound(w: &mut Writer<'_>, b: &Bound) -> Result<()> {
    match b {
        Bound::Sequence(s) => w.u16(*s),
        Bound::Time(t) => t.write(w),
    }
}

fn filter_type(b: &Bound) -> u8 {
    match b {
        Bound::Sequence(_) => FILTER_SEQUENCE_NUMBER,
        Bound::Time(_) => FILTER_USER_FACING_TIME,
    }
}

impl RacpRequest {
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        use racp_operator::*;
        let mut w = Writer::new(out);
        let (op, filter) = match self {
            RacpRequest::ReportStoredRecords(f) => (racp_op::REPORT_STORED_RECORDS, Some(f)),
            RacpRequest::DeleteStoredRecords(f) => (racp_op::DELETE_STORED_RECORDS, Some(f)),
            RacpRequest::Abort => (racp_op::ABORT, None),
            RacpRequest::ReportNumberOfRecords(f) => (racp_op::REPORT_NUMBER_OF_RECORDS, Some(f)),
        };
        w.u8(op)?;
        match filter {
            None => w.u8(NULL)?,
            Some(RecordFilter::All) => w.u8(ALL)?,
            Some(RecordFilter::First) => w.u8(FIRST)?,
            Some(RecordFilter::Last) => w.u8(LAST)?,
            Some(RecordFilter::AtMost(b)) => {
                w.bytes(&[LESS_OR_EQUAL, filter_type(b)])?;
                write_bound(&mut w, b)?;
            }
            Some(RecordFilter::AtLeast(b)) => {
                w.bytes(&[GREATER_OR_EQUAL, filter_type(b)])?;
                write_bound(&mut w, b)?;
            }
            Some(RecordFilter::Range(a, b)) => {
                if filter_type(a) != filter_type(b) {
                    return Err(Error::BadField { field: "racp range bounds of different kinds", value: filter_type(b) as u32 });
                }
                w.bytes(&[WITHIN_RANGE, filter_type(a)])?;
                write_bound(&mut w, a)?;
                write_bound(&mut w, b)?;
            }
        }
        Ok(w.len())
    }

    /// Parses a request (what a meter does; the simulator uses it). Errors carry the RACP
    /// response code a meter would answer with in `value` of `BadField`/`Unsupported`.
    pub fn parse(b: &[u8]) -> Result<RacpRequest> {
        use racp_operator::*;
        check_len(b, 2)?;
        let (op, operator) = (u8_at(b, 0), u8_at(b, 1));
        let bound = |at: usize, ft: u8| -> Result<Bound> {
            match ft {
                FILTER_SEQUENCE_NUMBER => {
                    check_len(b, at + 2)?;
                    Ok(Bound::Sequence(le16(b, at)))
                }
                FILTER_USER_FACING_TIME => Ok(Bound::Time(DateTime::parse(b.get(at..).unwrap_or(&[]))?)),
                other => Err(Error::Unsupported { what: "racp filter type", value: other as u32 }),
            }
        };
        let bound_len = |ft: u8| if ft == FILTER_USER_FACING_TIME { 7 } else { 2 };
        let filter = || -> Result<RecordFilter> {
            Ok(match operator {
                ALL => RecordFilter::All,
                FIRST => RecordFilter::First,
                LAST => RecordFilter::Last,
                LESS_OR_EQUAL | GREATER_OR_EQUAL | WITHIN_RANGE => {
                    check_len(b, 3)?;
                    let ft = u8_at(b, 2);
                    let lo = bound(3, ft)?;
                    match operator {
                        LESS_OR_EQUAL => RecordFilter::AtMost(lo),
                        GREATER_OR_EQUAL => RecordFilter::AtLeast(lo),
                        _ => RecordFilter::Range(lo, bound(3 + bound_len(ft), ft)?),
                    }
                }
                other => return Err(Error::BadField { field: "racp operator", value: other as u32 }),
            })
        };
        match op {
            racp_op::REPORT_STORED_RECORDS => Ok(RacpRequest::ReportStoredRecords(filter()?)),
            racp_op::DELETE_STORED_RECORDS => Ok(RacpRequest::DeleteStoredRecords(filter()?)),
            racp_op::REPORT_NUMBER_OF_RECORDS => Ok(RacpRequest::ReportNumberOfRecords(filter()?)),
            racp_op::ABORT if operator == NULL => Ok(RacpRequest::Abort),
            racp_op::ABORT => Err(Error::BadField { field: "racp operator", value: operator as u32 }),
            other => Err(Error::Unsupported { what: "racp op code", value: other as u32 }),
        }
    }
}

/// RACP response code values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RacpResponseCode {
    Success,
    OpCodeNotSupported,
    InvalidOperator,
    OperatorNotSupported,
    InvalidOperand,
    NoRecordsFound,
    AbortUnsuccessful,
    ProcedureNotCompleted,
    OperandNotSupported,
    /// A value the XML reserves (0, 10–255), kept as sent.
    Reserved(u8),
}

impl RacpResponseCode {
    pub fn from_u8(v: u8) -> RacpResponseCode {
        use RacpResponseCode::*;
        match v {
            1 => Success,
            2 => OpCodeNotSupported,
            3 => InvalidOperator,
            4 => OperatorNotSupported,
            5 => InvalidOperand,
            6 => NoRecordsFound,
            7 => AbortUnsuccessful,
            8 => ProcedureNotCompleted,
            9 => OperandNotSupported,
            other => Reserved(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        use RacpResponseCode::*;
        match self {
            Success => 1,
            OpCodeNotSupported => 2,
            InvalidOperator => 3,
            OperatorNotSupported => 4,
            InvalidOperand => 5,
            NoRecordsFound => 6,
            AbortUnsuccessful => 7,
            ProcedureNotCompleted => 8,
            OperandNotSupported => 9,
            Reserved(v) => v,
        }
    }
}

/// An indication from the RACP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RacpResponse {
    /// Op code 5, operator null, operand u16 (the Glucose Service's record count size).
    NumberOfRecords(u16),
    /// Op code 6, operator null, operand: the request's op code and the response code.
    ResponseCode { request_op_code: u8, code: RacpResponseCode },
}

impl RacpResponse {
    pub fn parse(b: &[u8]) -> Result<RacpResponse> {
        check_len(b, 2)?;
        let operator = u8_at(b, 1);
        if operator != racp_operator::NULL {
            return Err(Error::BadField { field: "racp response operator", value: operator as u32 });
        }
        match u8_at(b, 0) {
            racp_op::NUMBER_OF_RECORDS_RESPONSE => {
                check_len(b, 4)?;
                Ok(RacpResponse::NumberOfRecords(le16(b, 2)))
            }
            racp_op::RESPONSE_CODE => {
                check_len(b, 4)?;
                Ok(RacpResponse::ResponseCode { request_op_code: u8_at(b, 2), code: RacpResponseCode::from_u8(u8_at(b, 3)) })
            }
            other => Err(Error::Unsupported { what: "racp response op code", value: other as u32 }),
        }
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        match self {
            RacpResponse::NumberOfRecords(n) => {
                w.bytes(&[racp_op::NUMBER_OF_RECORDS_RESPONSE, racp_operator::NULL])?;
                w.u16(*n)?;
            }
            RacpResponse::ResponseCode { request_op_code, code } => {
                w.bytes(&[racp_op::RESPONSE_CODE, racp_operator::NULL, *request_op_code, code.to_u8()])?;
            }
        }
        Ok(w.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// GP-8: seq 1; base time 2024-03-15 08:30:00; concentration 0xB05F = 95 × 10^-5 kg/L; type-location 0x11.
    const GP8: [u8; 13] = [0x02, 0x01, 0x00, 0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00, 0x5F, 0xB0, 0x11];

    #[test]
    fn gp8_kg_per_l_is_95_mg_per_dl() {
        let g = Glucose::parse(&GP8).unwrap();
        assert_eq!(g.sequence, 1);
        assert_eq!(g.base_time, DateTime { year: 2024, month: 3, day: 15, hours: 8, minutes: 30, seconds: 0 });
        assert_eq!(g.time_offset, None);
        let c = g.concentration.unwrap();
        assert_eq!((c.value, c.sample_type, c.location), (Sfloat(0xB05F), 1, 1));
        let (v, unit) = g.concentration_value().unwrap();
        assert_eq!(v.unwrap().to_string(), "95");
        assert_eq!(unit, crate::mdc::unit::MDC_DIM_MILLI_G_PER_DL);
        assert_eq!(g.status, None);
    }

    #[test]
    fn type_is_the_low_nibble() {
        // 0x25: type 5 (arterial whole blood), location 2 (alternate site test). With the
        // nibbles swapped this would read type 2 / location 5 (a reserved location).
        let mut b = GP8;
        b[12] = 0x25;
        let c = Glucose::parse(&b).unwrap().concentration.unwrap();
        assert_eq!((c.sample_type, c.location), (5, 2));
        assert_eq!(metric_for_type(c.sample_type), Some(mdc_glu::MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD));
    }

    #[test]
    fn mol_per_l_and_offset_and_status() {
        // mol/L 0xC035 = 53 × 10^-4 mol/L = 5.3 mmol/L; offset -90 min; status battery low.
        let b = [0x0F, 0x02, 0x01, 0xE8, 0x07, 3, 15, 8, 30, 0, 0xA6, 0xFF, 0x35, 0xC0, 0xF1, 0x01, 0x00];
        let g = Glucose::parse(&b).unwrap();
        assert_eq!(g.sequence, 0x0102);
        assert_eq!(g.time_offset, Some(-90));
        assert_eq!(g.concentration.unwrap().location, 15);
        assert_eq!(g.concentration_value().unwrap().0.unwrap().to_string(), "5.3");
        assert_eq!(g.status.unwrap().flags(), Flags::LOW_BATTERY);
        let base = DateTime { year: 2024, month: 3, day: 15, hours: 7, minutes: 0, seconds: 0 }.to_timestamp().unwrap();
        assert_eq!(g.device_time(), Some(crate::time::DeviceTime::Local(base)));
        let mut out = [0u8; 32];
        let n = g.emit(&mut out).unwrap();
        assert_eq!(&out[..n], &b[..]);
        assert_eq!(Glucose::parse(&b[..16]), Err(Error::Truncated { needed: 17, got: 16 }));
    }

    #[test]
    fn racp_requests_and_responses() {
        let mut out = [0u8; 20];
        let n = RacpRequest::ReportStoredRecords(RecordFilter::All).emit(&mut out).unwrap();
        assert_eq!(&out[..n], &[0x01, 0x01]);
        let n = RacpRequest::ReportStoredRecords(RecordFilter::AtLeast(Bound::Sequence(0x0102))).emit(&mut out).unwrap();
        assert_eq!(&out[..n], &[0x01, 0x03, 0x01, 0x02, 0x01]);
        let n = RacpRequest::ReportNumberOfRecords(RecordFilter::Range(Bound::Sequence(5), Bound::Sequence(9))).emit(&mut out).unwrap();
        assert_eq!(&out[..n], &[0x04, 0x04, 0x01, 0x05, 0x00, 0x09, 0x00]);
        assert_eq!(
            RacpRequest::parse(&out[..n]),
            Ok(RacpRequest::ReportNumberOfRecords(RecordFilter::Range(Bound::Sequence(5), Bound::Sequence(9))))
        );
        let n = RacpRequest::Abort.emit(&mut out).unwrap();
        assert_eq!(&out[..n], &[0x03, 0x00]);
        assert_eq!(RacpResponse::parse(&[0x05, 0x00, 0x2A, 0x00]), Ok(RacpResponse::NumberOfRecords(42)));
        assert_eq!(
            RacpResponse::parse(&[0x06, 0x00, 0x01, 0x06]),
            Ok(RacpResponse::ResponseCode { request_op_code: 1, code: RacpResponseCode::NoRecordsFound })
        );
        assert_eq!(RacpResponse::parse(&[0x06, 0x00, 0x01]), Err(Error::Truncated { needed: 4, got: 3 }));
        assert!(RacpRequest::parse(&[0x09, 0x01]).is_err());
        assert!(RacpRequest::parse(&[0x01, 0x03, 0x01, 0x02]).is_err());
    }
}
