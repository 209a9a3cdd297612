//! GATT decoders end to end: the public vectors GP-1..GP-9 (protocols.md §5, copied here),
//! the normalisation rules (codes, units, precision, flags, times, sequence numbers), and the
//! simulators checked against what the decoders make of their output.

use medgw_protocols::decimal::Decimal;
use medgw_protocols::decode::{Decoder, Event};
use medgw_protocols::mdc::{code, unit, MdcCode};
use medgw_protocols::observation::{Measurement, Scalar, Value};
use medgw_protocols::quality::{AbsentReason, Flags, Status};
use medgw_protocols::sim::gatt::{GattSim, SIMULATORS};
use medgw_protocols::sim::{DeviceSimulator, Fault, Sent, SimOptions};
use medgw_protocols::time::{CivilTime, DeviceTime, Timestamp};
use medgw_protocols::wire::gatt::glucose::{mdc_glu, Bound, RacpRequest, RacpResponse, RacpResponseCode, RecordFilter};
use medgw_protocols::wire::gatt::heart_rate::{MDC_DIM_KILO_JOULES, MDC_ECG_TIME_PD_RR_GL};
use medgw_protocols::wire::gatt::{GattDecoder, GattKind, PROTOCOLS};
use medgw_protocols::wire::sfloat;

fn decode(kind: GattKind, bytes: &[u8]) -> Vec<Measurement> {
    let mut d = GattDecoder::new(kind);
    let mut ev = Vec::new();
    d.feed(bytes, Timestamp(0), &mut ev);
    ev.into_iter()
        .map(|e| match e {
            Event::Measurement(m) => m,
            other => panic!("{kind:?} {bytes:02X?}: {other:?}"),
        })
        .collect()
}

fn num(m: &Measurement) -> String {
    m.value.numeric().unwrap_or_else(|| panic!("not a number: {m:?}")).to_string()
}

fn local(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> Option<DeviceTime> {
    let c = CivilTime { year: y, month: mo, day: d, hour: h, minute: mi, second: s, millisecond: 0 };
    Some(DeviceTime::Local(c.to_timestamp().unwrap()))
}

// ---------------------------------------------------------------------------------------------
// GP-1..GP-9.

#[test]
fn gp1_heart_rate_uint8_contact_detected() {
    let ms = decode(GattKind::HeartRate, &[0x06, 0x48]);
    assert_eq!(ms.len(), 1);
    assert_eq!((ms[0].metric, num(&ms[0]), ms[0].unit), (code::MDC_ECG_HEART_RATE, "72".into(), unit::MDC_DIM_BEAT_PER_MIN));
    assert_eq!(ms[0].flags, Flags::NONE);
    assert_eq!(ms[0].device_time, None);
}

#[test]
fn gp2_heart_rate_with_one_rr_interval() {
    let ms = decode(GattKind::HeartRate, &[0x10, 0x48, 0x00, 0x04]);
    assert_eq!(num(&ms[0]), "72");
    assert_eq!((ms[1].metric, ms[1].unit), (MDC_ECG_TIME_PD_RR_GL, unit::MDC_DIM_MILLI_SEC));
    assert_eq!(MDC_ECG_TIME_PD_RR_GL.0, 147240);
    let Value::Compound(c) = &ms[1].value else { panic!("{:?}", ms[1]) };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].value, Scalar::Numeric("1000".parse().unwrap()));
}

#[test]
fn gp3_plx_spot_check() {
    let ms = decode(GattKind::PlxSpotCheck, &[0x00, 0x61, 0x00, 0x48, 0x00]);
    assert_eq!(ms.len(), 2);
    assert_eq!((ms[0].metric, num(&ms[0]), ms[0].unit), (code::MDC_PULS_OXIM_SAT_O2, "97".into(), unit::MDC_DIM_PERCENT));
    assert_eq!((ms[1].metric, num(&ms[1]), ms[1].unit), (code::MDC_PULS_OXIM_PULS_RATE, "72".into(), unit::MDC_DIM_BEAT_PER_MIN));
}

#[test]
fn gp4_plx_continuous_normal_only() {
    let ms = decode(GattKind::PlxContinuous, &[0x00, 0x62, 0x00, 0x5F, 0x00]);
    assert_eq!(ms.len(), 2);
    assert_eq!((ms[0].metric, num(&ms[0])), (code::MDC_PULS_OXIM_SAT_O2, "98".into()));
    assert_eq!((ms[1].metric, num(&ms[1])), (code::MDC_PULS_OXIM_PULS_RATE, "95".into()));
}

#[test]
fn gp5_blood_pressure_compound_and_pulse() {
    let ms = decode(GattKind::BloodPressure, &[0x04, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0x48, 0x00]);
    assert_eq!(ms.len(), 2);
    assert_eq!((ms[0].metric, ms[0].unit), (code::MDC_PRESS_BLD_NONINV, unit::MDC_DIM_MMHG));
    let Value::Compound(c) = &ms[0].value else { panic!() };
    let got: Vec<(MdcCode, String)> = c
        .iter()
        .map(|c| match &c.value {
            Scalar::Numeric(d) => (c.metric, d.to_string()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            (code::MDC_PRESS_BLD_NONINV_SYS, "120".into()),
            (code::MDC_PRESS_BLD_NONINV_DIA, "80".into()),
            (code::MDC_PRESS_BLD_NONINV_MEAN, "93".into())
        ]
    );
    assert_eq!((ms[1].metric, num(&ms[1]), ms[1].unit), (code::MDC_PULS_RATE_NON_INV, "72".into(), unit::MDC_DIM_BEAT_PER_MIN));
}

#[test]
fn gp6_temperature_float_celsius() {
    let ms = decode(GattKind::Temperature, &[0x00, 0x6F, 0x01, 0x00, 0xFF]);
    assert_eq!((ms[0].metric, num(&ms[0]), ms[0].unit), (code::MDC_TEMP_BODY, "36.7".into(), unit::MDC_DIM_DEGC));
    assert_eq!(ms[0].vendor, None);
}

#[test]
fn gp7_weight_si() {
    let ms = decode(GattKind::Weight, &[0x00, 0x14, 0x37]);
    assert_eq!((ms[0].metric, ms[0].unit), (code::MDC_MASS_BODY_ACTUAL, unit::MDC_DIM_KILO_G));
    assert!(ms[0].value.numeric().unwrap().value_eq(&"70.5".parse().unwrap()));
    assert_eq!(num(&ms[0]), "70.500");
}

#[test]
fn gp8_glucose_kg_per_l_to_mg_per_dl() {
    let ms = decode(GattKind::Glucose, &[0x02, 0x01, 0x00, 0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00, 0x5F, 0xB0, 0x11]);
    assert_eq!(ms.len(), 1);
    let m = &ms[0];
    assert_eq!((m.metric, num(m), m.unit), (code::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD, "95".into(), unit::MDC_DIM_MILLI_G_PER_DL));
    assert_eq!(m.seq, Some(1));
    assert_eq!(m.device_time, local(2024, 3, 15, 8, 30, 0));
    assert_eq!(m.vendor.as_ref().map(|v| v.code.as_ref()), Some("2A18.type.1.location.1"));
}

#[test]
fn gp9_sfloat_precision() {
    assert_eq!(sfloat::sfloat(u16::from_le_bytes([0x14, 0xF0])).number().unwrap().to_string(), "2.0");
    assert_eq!(sfloat::sfloat(u16::from_le_bytes([0xC8, 0xE0])).number().unwrap().to_string(), "2.00");
    // And through a characteristic: PLX PAI 0xF014 is 2.0 %, not 2.
    let ms = decode(GattKind::PlxSpotCheck, &[0x08, 0x61, 0x00, 0x48, 0x00, 0x14, 0xF0]);
    assert_eq!((ms[2].metric, num(&ms[2])), (code::MDC_PULS_OXIM_PERF_REL, "2.0".into()));
}

// ---------------------------------------------------------------------------------------------
// Normalisation rules.

#[test]
fn float_specials_are_never_numbers() {
    for (raw, reason, extra) in [
        (0x07FFu16, AbsentReason::NotANumber, Flags::NONE),
        (0x0800, AbsentReason::NotAtThisResolution, Flags::NONE),
        (0x07FE, AbsentReason::PositiveInfinity, Flags::OUT_OF_RANGE),
        (0x0802, AbsentReason::NegativeInfinity, Flags::OUT_OF_RANGE),
        (0x0801, AbsentReason::Reserved, Flags::NONE),
    ] {
        let b = raw.to_le_bytes();
        let ms = decode(GattKind::PlxSpotCheck, &[0x00, b[0], b[1], 0x48, 0x00]);
        assert_eq!(ms[0].value, Value::Absent(reason), "{raw:#x}");
        assert_eq!(ms[0].flags, Flags::UNAVAILABLE | extra);
        assert_eq!(num(&ms[1]), "72");
        // Inside the BP compound the member is absent, the others stay numbers.
        let ms = decode(GattKind::BloodPressure, &[0x00, 0x78, 0x00, 0x50, 0x00, b[0], b[1]]);
        let Value::Compound(c) = &ms[0].value else { panic!() };
        assert_eq!(c[2].value, Scalar::Absent(reason));
        assert_eq!(c[0].value, Scalar::Numeric(Decimal::from_int(120)));
    }
    // FLOAT specials in the thermometer.
    for (raw, reason) in [
        (0x007F_FFFFu32, AbsentReason::NotANumber),
        (0x0080_0000, AbsentReason::NotAtThisResolution),
        (0x007F_FFFE, AbsentReason::PositiveInfinity),
        (0x0080_0002, AbsentReason::NegativeInfinity),
        (0x0080_0001, AbsentReason::Reserved),
    ] {
        let b = raw.to_le_bytes();
        let ms = decode(GattKind::Temperature, &[0x00, b[0], b[1], b[2], b[3]]);
        assert_eq!(ms[0].value, Value::Absent(reason));
    }
}

#[test]
fn plx_measurement_status_rules() {
    let spot = |status: u16| {
        let s = status.to_le_bytes();
        decode(GattKind::PlxSpotCheck, &[0x02, 0x61, 0x00, 0x48, 0x00, s[0], s[1]])
    };
    // Bit 13 unavailable: no numbers.
    let ms = spot(1 << 13);
    assert!(ms.iter().all(|m| m.value == Value::Absent(AbsentReason::Unavailable)), "{ms:?}");
    // Bit 15 invalid: no numbers either, and the INVALID flag says why.
    let ms = spot(1 << 15);
    assert!(ms.iter().all(|m| m.value == Value::Absent(AbsentReason::Error) && m.flags.contains(Flags::INVALID)));
    // Bit 14 questionable keeps the number.
    let ms = spot(1 << 14);
    assert_eq!((num(&ms[0]), ms[0].flags), ("97".into(), Flags::QUESTIONABLE));
    for (bit, flag) in [
        (6, Flags::EARLY_ESTIMATE),
        (5, Flags::EARLY_ESTIMATE),
        (9, Flags::FROM_STORAGE),
        (10, Flags::DEMO),
        (11, Flags::TEST),
        (12, Flags::CALIBRATING),
    ] {
        let ms = spot(1 << bit);
        assert_eq!(ms[0].flags, flag, "bit {bit}");
        let prelim = if bit <= 6 { Status::Preliminary } else { Status::Final };
        assert_eq!(ms[0].status, prelim, "bit {bit}");
    }
    // Validated, fully qualified and the reserved bits 0–4 change nothing.
    let ms = spot(0x019F);
    assert_eq!((ms[0].flags, ms[0].status), (Flags::NONE, Status::Final));
}

#[test]
fn plx_device_status_and_clock() {
    // Spot-check with device & sensor status "sensor displaced" and "device clock not set".
    let ms = decode(GattKind::PlxSpotCheck, &[0x15, 0x61, 0x00, 0x48, 0x00, 0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00, 0x00, 0x20, 0x00]);
    assert!(ms[0].flags.contains(Flags::SENSOR_OFF | Flags::CLOCK_NOT_SET));
    assert_eq!(ms[0].device_time, local(2024, 3, 15, 8, 30, 0));
    for (bit, flag) in [
        (0, Flags::LOW_SIGNAL_QUALITY),
        (1, Flags::INVALID),
        (2, Flags::QUESTIONABLE),
        (3, Flags::LOW_SIGNAL_QUALITY),
        (4, Flags::LOW_SIGNAL_QUALITY),
        (5, Flags::LOW_PERFUSION),
        (6, Flags::ARTIFACT),
        (7, Flags::OUT_OF_TRACK),
        (8, Flags::QUESTIONABLE),
        (9, Flags::PULSE_SEARCH),
        (10, Flags::ARTIFACT),
        (11, Flags::SENSOR_OFF),
        (12, Flags::QUESTIONABLE),
        (13, Flags::SENSOR_OFF),
        (14, Flags::INVALID),
        (15, Flags::SENSOR_OFF),
        (16, Flags::NONE),
        (23, Flags::NONE),
    ] {
        let s = (1u32 << bit).to_le_bytes();
        let ms = decode(GattKind::PlxContinuous, &[0x08, 0x61, 0x00, 0x48, 0x00, s[0], s[1], s[2]]);
        assert_eq!(ms[0].flags, flag, "bit {bit}");
        // A flag never removes the number here.
        assert_eq!(num(&ms[0]), "97");
    }
}

#[test]
fn plx_continuous_fast_and_slow_are_unmapped_not_dropped() {
    let ms = decode(GattKind::PlxContinuous, &[0x13, 0x61, 0x00, 0x48, 0x00, 0x60, 0x00, 0x4A, 0x00, 0x62, 0x00, 0x47, 0x00, 0x2C, 0xF0]);
    let codes: Vec<(MdcCode, Option<&str>, String)> =
        ms.iter().map(|m| (m.metric, m.vendor.as_ref().map(|v| v.code.as_ref()), num(m))).collect();
    assert_eq!(
        codes,
        [
            (code::MDC_PULS_OXIM_SAT_O2, None, "97".into()),
            (code::MDC_PULS_OXIM_PULS_RATE, None, "72".into()),
            (MdcCode::UNMAPPED, Some("2A5F.spo2-fast"), "96".into()),
            (MdcCode::UNMAPPED, Some("2A5F.pr-fast"), "74".into()),
            (MdcCode::UNMAPPED, Some("2A5F.spo2-slow"), "98".into()),
            (MdcCode::UNMAPPED, Some("2A5F.pr-slow"), "71".into()),
            (code::MDC_PULS_OXIM_PERF_REL, None, "4.4".into()),
        ]
    );
    assert!(ms[2].flags.contains(Flags::UNMAPPED));
}

#[test]
fn heart_rate_contact_energy_and_uint16() {
    // Contact supported, not detected, rate 0: the strap's "no value".
    let ms = decode(GattKind::HeartRate, &[0x04, 0x00]);
    assert_eq!(ms[0].value, Value::Absent(AbsentReason::Unavailable));
    assert!(ms[0].flags.contains(Flags::SENSOR_OFF));
    // Not detected but a rate: kept, flagged.
    let ms = decode(GattKind::HeartRate, &[0x04, 0x48]);
    assert_eq!((num(&ms[0]), ms[0].flags), ("72".into(), Flags::SENSOR_OFF));
    // uint16 rate 300, energy 0xFFFF (saturated).
    let ms = decode(GattKind::HeartRate, &[0x09, 0x2C, 0x01, 0xFF, 0xFF]);
    assert_eq!(num(&ms[0]), "300");
    assert_eq!((ms[1].metric, ms[1].unit, num(&ms[1])), (MdcCode::UNMAPPED, MDC_DIM_KILO_JOULES, "65535".into()));
    assert_eq!(ms[1].flags, Flags::UNMAPPED | Flags::OUT_OF_RANGE);
    assert_eq!(ms[1].vendor.as_ref().map(|v| v.code.as_ref()), Some("2A37.energy-expended"));
    assert_eq!(MDC_DIM_KILO_JOULES.0, 266115);
}

#[test]
fn blood_pressure_kpa_time_and_status() {
    // kPa 16.0 / 10.7 / 12.4 (exponent -1), time stamp, PR 72, user 255, status: cuff loose +
    // irregular pulse + PR below the lower limit.
    let ms = decode(
        GattKind::BloodPressure,
        &[0x1F, 0xA0, 0xF0, 0x6B, 0xF0, 0x7C, 0xF0, 0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00, 0x48, 0x00, 0xFF, 0x16, 0x00],
    );
    assert_eq!(ms[0].unit, unit::MDC_DIM_KILO_PASCAL);
    let Value::Compound(c) = &ms[0].value else { panic!() };
    assert_eq!(c[0].value, Scalar::Numeric("16.0".parse().unwrap()));
    assert_eq!(ms[0].device_time, local(2024, 3, 15, 8, 30, 0));
    assert_eq!(ms[0].flags, Flags::QUESTIONABLE | Flags::ALARM);
    assert_eq!(ms[1].flags, Flags::QUESTIONABLE | Flags::ALARM);
    assert_eq!(ms[1].device_time, ms[0].device_time);
    // Body movement → ARTIFACT, PR above the upper limit → ALARM on the pulse rate only;
    // improper position → QUESTIONABLE, PR range 3 (reserved) → nothing.
    let ms = decode(GattKind::BloodPressure, &[0x14, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0x48, 0x00, 0x09, 0x00]);
    assert_eq!(ms[0].flags, Flags::ARTIFACT);
    assert_eq!(ms[1].flags, Flags::ARTIFACT | Flags::ALARM);
    let ms = decode(GattKind::BloodPressure, &[0x14, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0x48, 0x00, 0x38, 0x00]);
    assert_eq!((ms[0].flags, ms[1].flags), (Flags::QUESTIONABLE, Flags::QUESTIONABLE));
}

#[test]
fn temperature_fahrenheit_type_and_unknown_date() {
    // °F 98.6, time stamp with year 0 ("not known"), type 9 (tympanum).
    let ms = decode(GattKind::Temperature, &[0x07, 0xDA, 0x03, 0x00, 0xFF, 0x00, 0x00, 0x03, 0x0F, 0x08, 0x1E, 0x00, 0x09]);
    assert_eq!((num(&ms[0]), ms[0].unit), ("98.6".into(), unit::MDC_DIM_FAHR));
    assert_eq!(ms[0].device_time, None);
    assert_eq!(ms[0].vendor.as_ref().map(|v| (v.namespace.as_ref(), v.code.as_ref())), Some(("gatt", "2A1C.type.9")));
}

#[test]
fn weight_imperial_height_bmi_and_unsuccessful() {
    let ms = decode(GattKind::Weight, &[0x0B, 0xB7, 0x3C, 0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00, 0xE5, 0x00, 0xB3, 0x02]);
    let got: Vec<(MdcCode, String, MdcCode)> = ms.iter().map(|m| (m.metric, num(m), m.unit)).collect();
    assert_eq!(
        got,
        [
            (code::MDC_MASS_BODY_ACTUAL, "155.43".into(), unit::MDC_DIM_LB),
            (code::MDC_RATIO_MASS_BODY_LEN_SQ, "22.9".into(), unit::MDC_DIM_KG_PER_M_SQ),
            (code::MDC_LEN_BODY_ACTUAL, "69.1".into(), unit::MDC_DIM_INCH),
        ]
    );
    assert!(ms.iter().all(|m| m.device_time == local(2024, 3, 15, 8, 30, 0)));
    // SI height 1755 → 1.755 m → 175.5 cm exactly.
    let ms = decode(GattKind::Weight, &[0x08, 0x14, 0x37, 0xE5, 0x00, 0xDB, 0x06]);
    assert_eq!((num(&ms[2]), ms[2].unit), ("175.5".into(), unit::MDC_DIM_CENTI_M));
    // 0xFFFF: measurement unsuccessful.
    let ms = decode(GattKind::Weight, &[0x00, 0xFF, 0xFF]);
    assert_eq!(ms[0].value, Value::Absent(AbsentReason::Unavailable));
}

#[test]
fn glucose_units_types_offset_and_status() {
    let rec = |flags: u8, tail: &[u8]| {
        let mut b = vec![flags, 0x2A, 0x00, 0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00];
        b.extend_from_slice(tail);
        decode(GattKind::Glucose, &b)
    };
    // mol/L 0xC035 = 5.3 mmol/L, venous plasma (type 4) from the earlobe (3), offset +15 min.
    let ms = rec(0x07, &[0x0F, 0x00, 0x35, 0xC0, 0x34]);
    assert_eq!(
        (ms[0].metric, num(&ms[0]), ms[0].unit),
        (mdc_glu::MDC_CONC_GLU_VENOUS_PLASMA, "5.3".into(), unit::MDC_DIM_MILLI_MOLE_PER_L)
    );
    assert_eq!(ms[0].device_time, local(2024, 3, 15, 8, 45, 0));
    assert_eq!(ms[0].seq, Some(42));
    // Every sample type maps as 10417 says; reserved types keep capillary whole blood.
    for (t, metric) in [
        (1u8, mdc_glu::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD),
        (2, mdc_glu::MDC_CONC_GLU_CAPILLARY_PLASMA),
        (3, mdc_glu::MDC_CONC_GLU_VENOUS_WHOLEBLOOD),
        (4, mdc_glu::MDC_CONC_GLU_VENOUS_PLASMA),
        (5, mdc_glu::MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD),
        (6, mdc_glu::MDC_CONC_GLU_ARTERIAL_PLASMA),
        (7, mdc_glu::MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD),
        (8, mdc_glu::MDC_CONC_GLU_UNDETERMINED_PLASMA),
        (9, mdc_glu::MDC_CONC_GLU_ISF),
        (10, mdc_glu::MDC_CONC_GLU_CONTROL),
        (0, code::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD),
        (11, code::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD),
        (15, code::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD),
    ] {
        let ms = rec(0x02, &[0x5F, 0xB0, 0x10 | t]);
        assert_eq!(ms[0].metric, metric, "type {t}");
        let test = if t == 10 { Flags::TEST } else { Flags::NONE };
        assert_eq!(ms[0].flags, test, "type {t}");
    }
    assert_eq!(mdc_glu::MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD.0, 160364);
    // Control solution as the location also marks the value as a test.
    assert_eq!(rec(0x02, &[0x5F, 0xB0, 0x41])[0].flags, Flags::TEST);
    // No concentration: an absent value that still carries the record's number, time and status.
    let ms = rec(0x08, &[0x08, 0x00]);
    assert_eq!(ms[0].value, Value::Absent(AbsentReason::Unavailable));
    assert_eq!(ms[0].flags, Flags::UNAVAILABLE | Flags::INVALID);
    for (bit, flag) in [
        (0, Flags::LOW_BATTERY),
        (1, Flags::INVALID),
        (2, Flags::INVALID),
        (3, Flags::INVALID),
        (4, Flags::INVALID),
        (5, Flags::OUT_OF_RANGE),
        (6, Flags::OUT_OF_RANGE),
        (7, Flags::QUESTIONABLE),
        (8, Flags::QUESTIONABLE),
        (9, Flags::INVALID),
        (10, Flags::INVALID),
        (11, Flags::CLOCK_NOT_SET),
        (12, Flags::NONE),
    ] {
        let s = (1u16 << bit).to_le_bytes();
        let ms = rec(0x0A, &[0x5F, 0xB0, 0x11, s[0], s[1]]);
        assert_eq!((num(&ms[0]), ms[0].flags), ("95".into(), flag), "bit {bit}");
    }
}

// ---------------------------------------------------------------------------------------------
// Simulators.

/// Decoded measurements flattened to what `Sent` records: compound members one by one.
fn flatten(m: &Measurement) -> Vec<Sent> {
    let time = m.device_time.map(|t| match t {
        DeviceTime::Local(t) | DeviceTime::Utc(t) => t,
    });
    let one = |metric, value: Option<Decimal>| Sent { metric, value, unit: m.unit, device_time: time, seq: m.seq };
    match &m.value {
        Value::Compound(c) => c
            .iter()
            .map(|c| {
                one(
                    c.metric,
                    match c.value {
                        Scalar::Numeric(d) => Some(d),
                        Scalar::Absent(_) => None,
                    },
                )
            })
            .collect(),
        v => vec![one(m.metric, v.numeric())],
    }
}

fn run(kind: GattKind, seed: u64, ticks: usize, faults: &[(usize, Fault)]) -> (Vec<Sent>, Vec<Sent>, usize) {
    let opts = SimOptions { seed, period_ms: 1000, record: true };
    let t0 = Timestamp(1_710_491_400_250);
    let mut sim = GattSim::new(kind, &opts, t0);
    let mut dec = GattDecoder::new(kind);
    let (mut sent, mut got, mut rejected) = (Vec::new(), Vec::new(), 0);
    let mut now = t0;
    for i in 0..ticks {
        let mut garbage = false;
        for (at, f) in faults {
            if *at == i {
                sim.inject(*f);
                garbage |= matches!(f, Fault::Garbage(_));
            }
        }
        let mut out = Vec::new();
        sim.tick(now, &mut out);
        sent.extend(sim.take_sent());
        if !out.is_empty() {
            let mut ev = Vec::new();
            dec.feed(&out, now, &mut ev);
            for e in ev {
                match e {
                    // What random bytes happen to decode to was never "sent".
                    Event::Measurement(_) if garbage => {}
                    Event::Measurement(m) => got.extend(flatten(&m)),
                    Event::Rejected { .. } => rejected += 1,
                    Event::SequenceGap { .. } => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        now = Timestamp(sim.next_tick().0.max(now.0 + 1));
    }
    (sent, got, rejected)
}

#[test]
fn every_simulator_is_decoded_to_what_it_sent() {
    for (name, _) in SIMULATORS {
        let kind = GattKind::from_protocol(name).unwrap();
        let faults = [
            (10, Fault::SensorOff(true)),
            (14, Fault::SensorOff(false)),
            (20, Fault::BadChecksum),
            (30, Fault::Truncate),
            (40, Fault::Garbage(7)),
            (50, Fault::Silence(5000)),
        ];
        let (sent, got, rejected) = run(kind, 7, 120, &faults);
        assert!(sent.len() >= 100, "{name}: {} sent", sent.len());
        assert_eq!(got, sent, "{name}");
        // The truncated value (and the heart rate's malformed "NaN") are rejected.
        assert!(rejected >= 1, "{name}");
        // Sensor off produced absent values, the rest are numbers that move.
        assert!(sent.iter().any(|s| s.value.is_none()), "{name}");
        let values: std::collections::BTreeSet<String> = sent.iter().filter_map(|s| s.value.map(|v| v.to_string())).collect();
        assert!(values.len() > 5, "{name}: {values:?}");
    }
}

#[test]
fn simulator_registry_matches_the_protocols() {
    let names: Vec<&str> = SIMULATORS.iter().map(|(n, _)| *n).collect();
    let protos: Vec<&str> = PROTOCOLS.iter().map(|p| p.name).collect();
    assert_eq!(names, protos);
    for (name, make) in SIMULATORS {
        let mut s = make(&SimOptions::default(), Timestamp(0));
        assert_eq!(s.protocol(), *name);
        let mut out = Vec::new();
        s.tick(Timestamp(0), &mut out);
        assert!(!out.is_empty(), "{name}");
        assert_eq!(s.next_tick(), Timestamp(1000));
    }
}

#[test]
fn each_tick_is_one_value() {
    // The same seed gives the same values; two ticks give two separately decodable values.
    for kind in GattKind::ALL {
        let opts = SimOptions { seed: 3, period_ms: 500, record: false };
        let mut a = GattSim::new(kind, &opts, Timestamp(0));
        let mut b = GattSim::new(kind, &opts, Timestamp(0));
        for i in 0..5 {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            a.tick(Timestamp(i * 500), &mut x);
            b.tick(Timestamp(i * 500), &mut y);
            assert_eq!(x, y);
            assert!(!decode(kind, &x).is_empty());
        }
    }
}

#[test]
fn glucose_meter_answers_the_racp() {
    let opts = SimOptions { seed: 5, period_ms: 1000, record: true };
    let mut sim = GattSim::new(GattKind::Glucose, &opts, Timestamp(0));
    let mut now = Timestamp(0);
    for _ in 0..20 {
        sim.tick(now, &mut Vec::new());
        now = sim.next_tick();
    }
    assert_eq!(sim.stored_records(), 20);
    sim.take_sent();
    let req = |r: RacpRequest| {
        let mut b = [0u8; 20];
        let n = r.emit(&mut b).unwrap();
        b[..n].to_vec()
    };
    let mut out = Vec::new();
    sim.receive(&req(RacpRequest::ReportNumberOfRecords(RecordFilter::All)), now, &mut out);
    assert_eq!(sim.take_racp_indications(), [vec![0x05, 0x00, 20, 0x00]]);
    // Report records with sequence >= 15: five values on the next ticks, due at once.
    sim.receive(&req(RacpRequest::ReportStoredRecords(RecordFilter::AtLeast(Bound::Sequence(15)))), now, &mut out);
    let ind = sim.take_racp_indications();
    assert_eq!(RacpResponse::parse(&ind[0]).unwrap(), RacpResponse::ResponseCode { request_op_code: 1, code: RacpResponseCode::Success });
    // A second procedure while records are still going out is refused.
    sim.receive(&req(RacpRequest::ReportStoredRecords(RecordFilter::All)), now, &mut out);
    assert_eq!(
        RacpResponse::parse(&sim.take_racp_indications()[0]).unwrap(),
        RacpResponse::ResponseCode { request_op_code: 1, code: RacpResponseCode::ProcedureNotCompleted }
    );
    let mut seqs = Vec::new();
    for _ in 0..5 {
        assert_eq!(sim.next_tick(), now);
        let mut v = Vec::new();
        sim.tick(now, &mut v);
        seqs.push(decode(GattKind::Glucose, &v)[0].seq.unwrap());
    }
    assert_eq!(seqs, [15, 16, 17, 18, 19]);
    assert_eq!(sim.take_sent().len(), 5);
    // Delete records <= 9, then count; an unknown op code is refused as the meter would.
    sim.receive(&req(RacpRequest::DeleteStoredRecords(RecordFilter::AtMost(Bound::Sequence(9)))), now, &mut out);
    sim.receive(&req(RacpRequest::ReportNumberOfRecords(RecordFilter::All)), now, &mut out);
    sim.receive(&[0x09, 0x01], now, &mut out);
    sim.receive(&req(RacpRequest::ReportStoredRecords(RecordFilter::Range(Bound::Sequence(100), Bound::Sequence(200)))), now, &mut out);
    let ind: Vec<RacpResponse> = sim.take_racp_indications().iter().map(|b| RacpResponse::parse(b).unwrap()).collect();
    assert_eq!(
        ind,
        [
            RacpResponse::ResponseCode { request_op_code: 2, code: RacpResponseCode::Success },
            RacpResponse::NumberOfRecords(10),
            RacpResponse::ResponseCode { request_op_code: 9, code: RacpResponseCode::OpCodeNotSupported },
            RacpResponse::ResponseCode { request_op_code: 1, code: RacpResponseCode::NoRecordsFound },
        ]
    );
    assert!(out.is_empty(), "RACP answers never enter the 0x2A18 value stream");
}
