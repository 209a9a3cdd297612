//! Encoder tests built from the public vectors (FHIR vital-signs, HL7 PCD-01 HP-1) and from every
//! row of the nomenclature table.

use std::sync::Arc;

use medgw_protocols::decimal::Decimal;
use medgw_protocols::encode::{canonical, fhir, hl7v2};
use medgw_protocols::mdc::{code, unit, MdcCode};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::*;
use medgw_protocols::time::{DeviceTime, Timestamp};
use serde_json::Value as Json;

mod pcd01_check;

/// 2024-03-15T10:22:05Z.
const T: Timestamp = Timestamp(1_710_498_125_000);

fn context(patient: Option<Patient>, eui: Option<&str>) -> Arc<DeviceContext> {
    Arc::new(DeviceContext {
        gateway: "gw-icu-1".into(),
        name: "bed4-monitor".into(),
        protocol: "intellivue".into(),
        port: "/dev/ttyUSB0".into(),
        identity: DeviceIdentity {
            manufacturer: Some("Philips".into()),
            model: Some("MX450".into()),
            serial: Some("DE12345678".into()),
            eui64: eui.map(|e| e.parse().unwrap()),
            firmware: None,
        },
        location: Location { site: "HOSP".into(), unit: "ICU".into(), room: None, bed: "BED4".into() },
        patient,
        gateway_eui64: None,
    })
}

fn p1() -> Option<Patient> {
    Some(Patient::configured("p1", None))
}

fn obs(ctx: &Arc<DeviceContext>, m: Measurement) -> Observation {
    let dt = match m.device_time {
        Some(DeviceTime::Utc(t)) => Some(t),
        _ => Some(T),
    };
    Observation::new(ctx.clone(), m, Timestamp(T.0 + 250), dt, Flags::NONE)
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn json(s: &str) -> Json {
    serde_json::from_str(s).unwrap()
}

fn codings(v: &Json) -> Vec<(String, String)> {
    v["coding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["system"].as_str().unwrap().to_string(), c["code"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn fhir_spo2_matches_the_public_vector() {
    let nom = Nomenclature::builtin();
    let o = obs(&context(p1(), None), Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT));
    let text = fhir::observation(&o, &nom);
    let v = json(&text);
    assert_eq!(v["resourceType"], "Observation");
    assert_eq!(v["status"], "final");
    assert_eq!(v["category"][0]["coding"][0]["system"], "http://terminology.hl7.org/CodeSystem/observation-category");
    assert_eq!(v["category"][0]["coding"][0]["code"], "vital-signs");
    assert_eq!(
        codings(&v["code"]),
        vec![
            ("http://loinc.org".to_string(), "59408-5".to_string()),
            ("http://loinc.org".to_string(), "2708-6".to_string()),
            ("urn:iso:std:iso:11073:10101".to_string(), "150456".to_string()),
        ]
    );
    assert_eq!(v["subject"]["reference"], "Patient/p1");
    assert_eq!(v["effectiveDateTime"], "2024-03-15T10:22:05Z");
    assert_eq!(v["valueQuantity"]["value"], 97);
    assert_eq!(v["valueQuantity"]["system"], "http://unitsofmeasure.org");
    assert_eq!(v["valueQuantity"]["code"], "%");
    assert_eq!(v["identifier"][0]["value"], format!("urn:uuid:{}", o.reading.id));
    assert_eq!(v["meta"]["profile"][1], "http://hl7.org/fhir/StructureDefinition/oxygensat");
    assert!(v["device"]["reference"].as_str().unwrap().starts_with("Device/"));
    assert!(v.get("dataAbsentReason").is_none());
}

#[test]
fn fhir_keeps_precision_and_absent_values_have_no_number() {
    let nom = Nomenclature::builtin();
    let ctx = context(p1(), None);
    let t = fhir::observation(&obs(&ctx, Measurement::numeric(code::MDC_TEMP_BODY, d("37.0"), unit::MDC_DIM_DEGC)), &nom);
    assert!(t.contains(r#""valueQuantity":{"value":37.0,"unit":"°C","system":"http://unitsofmeasure.org","code":"Cel"}"#), "{t}");
    for (reason, code) in [
        (AbsentReason::NotANumber, "not-a-number"),
        (AbsentReason::Unavailable, "unknown"),
        (AbsentReason::PositiveInfinity, "positive-infinity"),
        (AbsentReason::NegativeInfinity, "negative-infinity"),
        (AbsentReason::NotAtThisResolution, "error"),
    ] {
        let v = json(&fhir::observation(&obs(&ctx, Measurement::absent(code::MDC_PULS_OXIM_SAT_O2, reason, unit::MDC_DIM_PERCENT)), &nom));
        assert!(v.get("valueQuantity").is_none());
        assert_eq!(v["dataAbsentReason"]["coding"][0]["system"], "http://terminology.hl7.org/CodeSystem/data-absent-reason");
        assert_eq!(v["dataAbsentReason"]["coding"][0]["code"], code);
        let flags: Vec<&str> = v["extension"].as_array().unwrap().iter().filter_map(|e| e["valueCode"].as_str()).collect();
        assert!(flags.contains(&"unavailable"), "{flags:?}");
    }
}

#[test]
fn fhir_blood_pressure_is_a_panel_with_components() {
    let nom = Nomenclature::builtin();
    let m = Measurement {
        metric: code::MDC_PRESS_BLD_NONINV,
        vendor: None,
        value: Value::Compound(
            vec![
                Component { metric: code::MDC_PRESS_BLD_NONINV_SYS, value: Scalar::Numeric(d("120")) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_DIA, value: Scalar::Numeric(d("80")) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_MEAN, value: Scalar::Absent(AbsentReason::NotANumber) },
            ]
            .into(),
        ),
        unit: unit::MDC_DIM_MMHG,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    };
    let v = json(&fhir::observation(&obs(&context(p1(), None), m), &nom));
    assert_eq!(codings(&v["code"])[0], ("http://loinc.org".into(), "85354-9".into()));
    assert_eq!(v["meta"]["profile"][1], "http://hl7.org/fhir/StructureDefinition/bp");
    assert!(v.get("valueQuantity").is_none());
    let comps = v["component"].as_array().unwrap();
    assert_eq!(comps.len(), 3);
    assert_eq!(codings(&comps[0]["code"])[0].1, "8480-6");
    assert_eq!(comps[0]["valueQuantity"]["value"], 120);
    assert_eq!(comps[0]["valueQuantity"]["code"], "mm[Hg]");
    assert_eq!(codings(&comps[1]["code"])[0].1, "8462-4");
    assert_eq!(comps[1]["valueQuantity"]["value"], 80);
    assert_eq!(codings(&comps[2]["code"])[1].1, "150023");
    assert_eq!(comps[2]["dataAbsentReason"]["coding"][0]["code"], "not-a-number");
}

#[test]
fn fhir_converts_to_the_profile_unit_and_records_the_original() {
    let nom = Nomenclature::builtin();
    let ctx = context(p1(), None);
    let text = fhir::observation(&obs(&ctx, Measurement::numeric(code::MDC_TEMP_BODY, d("98.6"), unit::MDC_DIM_FAHR)), &nom);
    // 0.1 °F is 0.056 °C: °C needs one more decimal to keep the measurement's resolution.
    assert!(text.contains(r#""valueQuantity":{"value":37.00,"#), "{text}");
    let v = json(&text);
    assert_eq!(v["valueQuantity"]["code"], "Cel");
    let orig = v["extension"].as_array().unwrap().iter().find(|e| e["url"].as_str().unwrap().ends_with("original-value")).unwrap();
    assert_eq!(orig["valueQuantity"]["code"], "[degF]");
    assert_eq!(orig["valueQuantity"]["value"].to_string(), "98.6");
    let v =
        json(&fhir::observation(&obs(&ctx, Measurement::numeric(code::MDC_CONC_AWAY_CO2_ET, d("5.3"), unit::MDC_DIM_KILO_PASCAL)), &nom));
    assert_eq!(v["valueQuantity"]["code"], "mm[Hg]");
    assert_eq!(v["valueQuantity"]["value"].to_string(), "39.8");
    // 100 °F = 37.78 °C: published as 37.8, never as 38 (which reads as a 38.0 °C fever threshold).
    let text = fhir::observation(&obs(&ctx, Measurement::numeric(code::MDC_TEMP_BODY, d("100"), unit::MDC_DIM_FAHR)), &nom);
    assert!(text.contains(r#""valueQuantity":{"value":37.8,"#), "{text}");
}

#[test]
fn fhir_without_a_patient_takes_the_unassociated_form() {
    let nom = Nomenclature::builtin();
    let v = json(&fhir::observation(
        &obs(&context(None, None), Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT)),
        &nom,
    ));
    // The bed is the subject (a Location, by identifier); no profile is claimed and a tag says
    // that no patient is associated yet.
    assert_eq!(v["subject"]["type"], "Location");
    assert_eq!(v["subject"]["identifier"]["system"], "https://medgw.org/fhir/NamingSystem/bed");
    assert_eq!(v["subject"]["identifier"]["value"], "HOSP/ICU/BED4");
    assert!(v["meta"].get("profile").is_none(), "{v}");
    assert_eq!(v["meta"]["tag"][0]["system"], "https://medgw.org/fhir/CodeSystem/association");
    assert_eq!(v["meta"]["tag"][0]["code"], "unassociated");
    // Neither the vital-signs category nor a vital-sign LOINC code, which would oblige the
    // vital-signs profile and so a Patient subject: the MDC code says what it is.
    assert!(v.get("category").is_none(), "{v}");
    assert_eq!(codings(&v["code"]), vec![("urn:iso:std:iso:11073:10101".to_string(), "150456".to_string())]);
    assert_eq!(v["valueQuantity"]["value"], 97);
    // The blood-pressure panel: no LOINC in its components either.
    let bp = Measurement {
        metric: code::MDC_PRESS_BLD_NONINV,
        vendor: None,
        value: Value::Compound(
            vec![
                Component { metric: code::MDC_PRESS_BLD_NONINV_SYS, value: Scalar::Numeric(d("120")) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_DIA, value: Scalar::Numeric(d("80")) },
            ]
            .into(),
        ),
        unit: unit::MDC_DIM_MMHG,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    };
    let v = json(&fhir::observation(&obs(&context(None, None), bp.clone()), &nom));
    let text = v.to_string();
    assert!(!text.contains("loinc.org") && !text.contains("vital-signs"), "{text}");
    // Bound: the full vital-signs form, with the LOINC codes.
    let v = json(&fhir::observation(&obs(&context(p1(), None), bp), &nom));
    assert!(v.to_string().contains("85354-9") && v["category"][0]["coding"][0]["code"] == "vital-signs", "{v}");
    assert!(v["meta"].get("tag").is_none(), "{v}");
    let with_system = context(Some(Patient::configured("PAT123", Some("urn:oid:1.2.3.4".into()))), None);
    let v = json(&fhir::observation(
        &obs(&with_system, Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT)),
        &nom,
    ));
    assert_eq!(v["subject"]["identifier"]["system"], "urn:oid:1.2.3.4");
    assert_eq!(v["subject"]["identifier"]["value"], "PAT123");
}

#[test]
fn fhir_time_source_follows_time_quality() {
    let nom = Nomenclature::builtin();
    let ctx = context(p1(), None);
    let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT);
    let skewed = Observation::new(ctx.clone(), m.clone(), Timestamp(T.0 + 5000), Some(T), Flags::CLOCK_SKEW);
    let v = json(&fhir::observation(&skewed, &nom));
    assert_eq!(v["effectiveDateTime"], "2024-03-15T10:22:10Z");
    let ext = v["extension"].as_array().unwrap();
    let find = |suffix: &str| ext.iter().find(|e| e["url"].as_str().unwrap().ends_with(suffix)).cloned();
    assert_eq!(find("time-source").unwrap()["valueCode"], "gateway");
    assert_eq!(find("device-time").unwrap()["valueDateTime"], "2024-03-15T10:22:05Z");
    assert!(ext.iter().any(|e| e["valueCode"] == "clock-skew"));
    let good = Observation::new(ctx, m, Timestamp(T.0 + 300), Some(T), Flags::NONE);
    let v = json(&fhir::observation(&good, &nom));
    assert_eq!(v["effectiveDateTime"], "2024-03-15T10:22:05Z");
    assert_eq!(v["extension"][0]["valueCode"], "device");
}

#[test]
fn fhir_unmapped_codes_are_published_in_the_vendor_namespace() {
    let nom = Nomenclature::builtin();
    let m = Measurement::numeric(MdcCode::UNMAPPED, d("13.5"), unit::MDC_DIM_DIMLESS).with_vendor("masimo", "SPHB");
    let o = obs(&context(p1(), None), m);
    assert!(o.reading.flags.contains(Flags::UNMAPPED));
    let v = json(&fhir::observation(&o, &nom));
    assert_eq!(codings(&v["code"]), vec![("https://medgw.org/fhir/CodeSystem/vendor-masimo".to_string(), "SPHB".to_string())]);
    assert_eq!(v["valueQuantity"]["value"].to_string(), "13.5");
}

/// Text that comes from devices and configuration (device and vendor names, patient ids, bed
/// names, enumeration text) reaches the FHIR JSON escaped: the document parses and each text
/// reads back as it was. The observation is written by hand (`fhir_observation.rs`), so a
/// missed escape would be invalid JSON at the EHR.
#[test]
fn fhir_text_from_devices_and_configuration_is_escaped() {
    let nom = Nomenclature::builtin();
    let nasty = ["quote \" here", "back\\slash", "new\nline\ttab", "bell\u{7}\u{1f}", "ünïcødé ✓", "</script>"];
    for t in nasty {
        let mut c = (*context(Some(Patient::configured(t, None)), None)).clone();
        c.name = t.into();
        c.identity.manufacturer = Some(t.into());
        c.location.bed = t.into();
        let with_patient = Arc::new(c.clone());
        c.patient = None;
        let without = Arc::new(c);
        let enumerated = Measurement {
            metric: code::MDC_PULS_OXIM_SAT_O2,
            vendor: None,
            value: Value::Enumeration(Enumeration { code: None, text: t.into() }),
            unit: unit::MDC_DIM_PERCENT,
            device_time: None,
            seq: None,
            flags: Flags::NONE,
            status: Status::Final,
        };
        let v = json(&fhir::observation(&obs(&with_patient, enumerated), &nom));
        assert_eq!(v["valueCodeableConcept"]["text"], t);
        assert_eq!(v["subject"]["reference"], format!("Patient/{t}"));
        assert_eq!(v["device"]["display"], format!("{t} MX450 ({t})"));
        let m = Measurement::numeric(MdcCode::UNMAPPED, d("1"), unit::MDC_DIM_DIMLESS).with_vendor(t, t);
        let v = json(&fhir::observation(&obs(&without, m), &nom));
        assert_eq!(v["code"]["coding"][0]["code"], t);
        assert_eq!(v["code"]["coding"][0]["system"], format!("https://medgw.org/fhir/CodeSystem/vendor-{t}"));
        assert_eq!(v["code"]["text"], format!("{t} {t}"));
        assert_eq!(v["subject"]["identifier"]["value"], format!("HOSP/ICU/{t}"));
    }
}

/// A unit with no UCUM mapping keeps the value (R4 obs-6: `dataAbsentReason` only when there is
/// no value): Masimo SpHb with an unknown unit, an IntelliVue private unit, energy in kJ.
#[test]
fn fhir_keeps_the_value_when_the_unit_has_no_ucum_code() {
    let nom = Nomenclature::builtin();
    let ctx = context(p1(), None);
    // SpHb: the unit is not known at all. A value, no unit, no system/code.
    let m = Measurement::numeric(MdcCode::UNMAPPED, d("13.5"), MdcCode::UNMAPPED).with_vendor("masimo", "SPHB");
    let text = fhir::observation(&obs(&ctx, m), &nom);
    let v = json(&text);
    assert!(text.contains(r#""valueQuantity":{"value":13.5}"#), "{text}");
    assert!(v.get("dataAbsentReason").is_none(), "{text}");
    // A standard MDC unit that has no UCUM row: the value, the unit named, no UCUM system/code.
    let m = Measurement::numeric(code::MDC_PULS_OXIM_PERF_REL, d("2.5"), MdcCode::dim(3072));
    let v = json(&fhir::observation(&obs(&ctx, m), &nom));
    assert_eq!(v["valueQuantity"]["value"].to_string(), "2.5");
    assert_eq!(v["valueQuantity"]["unit"], "MDC unit 265216");
    assert!(v["valueQuantity"].get("system").is_none() && v["valueQuantity"].get("code").is_none());
    assert!(v.get("dataAbsentReason").is_none());
    // Energy expended in kJ (GATT 0x2A37) has a UCUM code now.
    let m = Measurement::numeric(MdcCode::UNMAPPED, d("120"), unit::MDC_DIM_KILO_JOULES).with_vendor("gatt", "2A37.energy-expended");
    let v = json(&fhir::observation(&obs(&ctx, m), &nom));
    assert_eq!(v["valueQuantity"]["value"], 120);
    assert_eq!(
        (v["valueQuantity"]["system"].as_str(), v["valueQuantity"]["code"].as_str()),
        (Some("http://unitsofmeasure.org"), Some("kJ"))
    );
}

/// Every metric of the table encodes to FHIR with its LOINC and MDC codings and a UCUM unit.
#[test]
fn every_table_code_encodes() {
    let nom = Nomenclature::builtin();
    let ctx = context(p1(), Some("0012345678ABCDEF"));
    for m in nom.metrics() {
        let unit = m.fhir_unit.unwrap_or(unit::MDC_DIM_DIMLESS);
        let value = if m.components.is_empty() {
            Value::Numeric(d("12.5"))
        } else {
            Value::Compound(m.components.iter().map(|c| Component { metric: *c, value: Scalar::Numeric(d("90")) }).collect())
        };
        let meas = Measurement {
            metric: m.code,
            vendor: None,
            value,
            unit,
            device_time: None,
            seq: None,
            flags: Flags::NONE,
            status: Status::Final,
        };
        let o = obs(&ctx, meas);
        let v = json(&fhir::observation(&o, &nom));
        let c = codings(&v["code"]);
        for l in &m.loinc {
            assert!(c.contains(&("http://loinc.org".to_string(), l.to_string())), "{}: {c:?}", m.ref_id);
        }
        assert!(c.contains(&("urn:iso:std:iso:11073:10101".to_string(), m.code.0.to_string())), "{}", m.ref_id);
        if m.components.is_empty() {
            let ucum = nom.unit(unit).unwrap().ucum.to_string();
            assert_eq!(v["valueQuantity"]["code"], ucum.as_str(), "{}", m.ref_id);
        } else {
            assert_eq!(v["component"].as_array().unwrap().len(), m.components.len());
        }
        assert_eq!(v["category"].is_array(), m.vital_profile.is_some(), "{}", m.ref_id);
        // And to HL7 with the MDC code and reference id in OBX-3.
        let msg = hl7v2::oru_r01(&[&o], &nom, "M1", T).unwrap();
        if m.components.is_empty() {
            assert!(msg.contains(&format!("|{}^{}^MDC|", m.code.0, m.ref_id)), "{msg}");
        } else {
            for c in &m.components {
                assert!(msg.contains(&format!("|{}^{}^MDC|", c.0, nom.metric(*c).unwrap().ref_id)), "{msg}");
            }
        }
    }
}

#[test]
fn fhir_device_resource() {
    let ctx = context(None, Some("0012345678ABCDEF"));
    let v = json(&fhir::device(&ctx));
    assert_eq!(v["resourceType"], "Device");
    assert_eq!(v["id"], fhir::device_id(&ctx).to_string());
    // The id is the UUID v5 of `urn:medgw:device:{key}` (hashed in pieces: checked against the
    // uuid crate over the written name).
    for c in [ctx.clone(), context(None, None)] {
        let name = format!("urn:medgw:device:{}", c.key());
        assert_eq!(fhir::device_id(&c), uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()));
    }
    assert_eq!(v["serialNumber"], "DE12345678");
    assert_eq!(v["manufacturer"], "Philips");
    assert_eq!(v["identifier"][0]["value"], "0012345678ABCDEF");
    assert_eq!(v["identifier"][0]["system"], fhir::EUI64_SYSTEM);
    assert_eq!(v["location"]["display"], "HOSP ICU BED4");
    // Without an EUI-64: the derived one that OBX-18 carries, in medgw's system, and the serial.
    let plain = context(None, None);
    let dev = json(&fhir::device(&plain));
    assert_eq!(dev["identifier"][0]["system"], fhir::DERIVED_EUI64_SYSTEM);
    assert_eq!(dev["identifier"][0]["value"], plain.eui64().0.to_string());
    assert_eq!(dev["identifier"][1]["value"], "DE12345678");
    // The Observation points at this Device.
    let nom = Nomenclature::builtin();
    let o = json(&fhir::observation(&obs(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT)), &nom));
    assert_eq!(o["device"]["reference"], format!("Device/{}", v["id"].as_str().unwrap()));
}

fn fields(segment: &str) -> Vec<&str> {
    segment.split('|').collect()
}

/// The first metric row (OBX-2 set) of a message: the rows before it describe the device.
fn first_metric(msg: &str) -> Vec<&str> {
    msg.split('\r').map(fields).find(|f| f[0] == "OBX" && !f[2].is_empty()).unwrap()
}

/// HP-1: the PCD-01 message of the reference vectors, rebuilt from observations.
#[test]
fn hl7_matches_hp1() {
    let nom = Nomenclature::builtin();
    let ctx = context(Some(Patient::configured("PAT123", Some("HOSP".into()))), Some("0012345678ABCDEF"));
    let a = obs(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT));
    let b = obs(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_PULS_RATE, d("72"), unit::MDC_DIM_BEAT_PER_MIN));
    let msg = hl7v2::oru_r01(&[&a, &b], &nom, "MSG00001", T).unwrap();
    let segs: Vec<&str> = msg.split('\r').filter(|s| !s.is_empty()).collect();
    assert!(msg.ends_with('\r'));
    let msh = fields(segs[0]);
    assert_eq!(msh[0], "MSH");
    assert_eq!(msh[1], "^~\\&");
    // Field numbers: MSH-1 is the separator itself, so MSH-n is index n-1.
    assert_eq!(msh[8], "ORU^R01^ORU_R01");
    assert_eq!(msh[9], "MSG00001");
    assert_eq!(msh[11], "2.6");
    assert_eq!(msh[6], "20240315102205+0000");
    assert_eq!(msh[20].split('^').nth(2), Some("1.3.6.1.4.1.19376.1.6.1.1.1"));
    // MSH-3 and OBR-3: the gateway as equipment, by its EUI-64 (derived from gw-icu-1, computed
    // independently with Python, see docs/pcd-01.md).
    assert_eq!(msh[2], "MEDGW^D2C61631486D20B2^EUI-64");
    assert_eq!(fields(segs[1])[3], "PAT123^^^HOSP^MR");
    assert!(fields(segs[1]).get(31).is_none(), "a bound patient is identified: {}", segs[1]);
    assert_eq!(fields(segs[2])[2], "I");
    assert_eq!(fields(segs[2])[3], "ICU^^BED4^HOSP");
    assert_eq!(fields(segs[3])[0], "OBR");
    assert_eq!(fields(segs[3])[3], "MSG00001^MEDGW^D2C61631486D20B2^EUI-64");
    assert_eq!(fields(segs[3])[7], "20240315102205+0000");
    // The containment tree before the metrics: MDS (an IntelliVue is a multi-parameter monitor),
    // the SpO2 VMD and its channel, each with OBX-18.
    assert_eq!(
        segs[4],
        "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||0012345678ABCDEF^^0012345678ABCDEF^EUI-64"
    );
    assert_eq!(segs[5], "OBX|2||69642^MDC_DEV_ANALY_SAT_O2_VMD^MDC|1.1.0.0|||||||X|||||||0012345678ABCDEF^^0012345678ABCDEF^EUI-64");
    assert_eq!(segs[6], "OBX|3||69643^MDC_DEV_ANALY_SAT_O2_CHAN^MDC|1.1.1.0|||||||X|||||||0012345678ABCDEF^^0012345678ABCDEF^EUI-64");
    let obx1 = fields(segs[7]);
    assert_eq!(obx1[0], "OBX");
    assert_eq!(obx1[2], "NM");
    assert_eq!(obx1[3], "150456^MDC_PULS_OXIM_SAT_O2^MDC");
    assert_eq!(obx1[4], "1.1.1.1");
    assert_eq!(obx1[5], "97");
    assert_eq!(obx1[6], "262688^MDC_DIM_PERCENT^MDC");
    assert_eq!(obx1[11], "R");
    assert_eq!(obx1[14], "20240315102205+0000");
    assert_eq!(obx1[18], "0012345678ABCDEF^^0012345678ABCDEF^EUI-64");
    let obx2 = fields(segs[8]);
    assert_eq!(obx2[3], "149530^MDC_PULS_OXIM_PULS_RATE^MDC");
    assert_eq!(obx2[4], "1.1.1.2");
    assert_eq!(obx2[6], "264864^MDC_DIM_BEAT_PER_MIN^MDC");
    assert_eq!(segs.len(), 9);
    pcd01_check::check(&msg).unwrap();
}

#[test]
fn hl7_absent_values_flags_compounds_and_escaping() {
    let nom = Nomenclature::builtin();
    let mut ctx = (*context(None, None)).clone();
    ctx.name = "bed|4".into();
    ctx.identity.serial = None;
    let ctx = Arc::new(ctx);
    let nan = obs(
        &ctx,
        Measurement::absent(code::MDC_PULS_OXIM_SAT_O2, AbsentReason::NotANumber, unit::MDC_DIM_PERCENT).with_flags(Flags::SENSOR_OFF),
    );
    let art = Observation::new(
        ctx.clone(),
        Measurement::numeric(code::MDC_PULS_OXIM_PULS_RATE, d("72"), unit::MDC_DIM_BEAT_PER_MIN).with_flags(Flags::ARTIFACT),
        T,
        None,
        Flags::NONE,
    );
    let bp = obs(
        &ctx,
        Measurement {
            metric: code::MDC_PRESS_BLD_NONINV,
            vendor: None,
            value: Value::Compound(
                vec![
                    Component { metric: code::MDC_PRESS_BLD_NONINV_SYS, value: Scalar::Numeric(d("120")) },
                    Component { metric: code::MDC_PRESS_BLD_NONINV_DIA, value: Scalar::Numeric(d("80")) },
                ]
                .into(),
            ),
            unit: unit::MDC_DIM_MMHG,
            device_time: None,
            seq: None,
            flags: Flags::NONE,
            status: Status::Final,
        },
    );
    let msg = hl7v2::oru_r01(&[&nan, &art, &bp], &nom, "M2", T).unwrap();
    let segs: Vec<&str> = msg.split('\r').filter(|s| !s.is_empty()).collect();
    // No patient bound: never a guessed patient, but the bed still reaches the receiver: PID of
    // an unidentified patient (temporary id = the bed, type ANON, PID-31 Identity Unknown Y),
    // PV1-2 class unknown, PV1-3 the bed.
    let pid = fields(segs[1]);
    assert_eq!(pid[0], "PID");
    assert_eq!(pid[3], "HOSP/ICU/BED4^^^MEDGW^ANON");
    assert_eq!(pid[5], "^^^^^^U");
    assert_eq!(pid[31], "Y");
    let pv1 = fields(segs[2]);
    assert_eq!((pv1[0], pv1[2], pv1[3]), ("PV1", "U", "ICU^^BED4^HOSP"));
    let all_obx: Vec<Vec<&str>> = segs.iter().filter(|s| s.starts_with("OBX")).map(|s| fields(s)).collect();
    let obx: Vec<&Vec<&str>> = all_obx.iter().filter(|f| !f[2].is_empty()).collect();
    assert_eq!(obx[0][5], "");
    assert_eq!(obx[0][8], "OFF");
    assert_eq!(obx[0][11], "X");
    assert_eq!(obx[1][8], "QUES");
    assert_eq!(obx[2][3], "150021^MDC_PRESS_BLD_NONINV_SYS^MDC");
    // The panel is one channel of the NIBP VMD (the second VMD after the SpO2 one).
    assert_eq!(obx[2][4], "1.2.1.1");
    assert_eq!(obx[3][4], "1.2.1.2");
    assert_eq!(obx[3][5], "80");
    // A device without an EUI-64 gets one derived from its identity key (cfg:gw-icu-1:bed|4,
    // computed independently with Python), marked as assigned by MEDGW, on every OBX row.
    for row in &all_obx {
        assert_eq!(row[18], "96E901FAEABDF715^MEDGW^96E901FAEABDF715^EUI-64");
    }
    pcd01_check::check(&msg).unwrap();
    // The pulse rate had no device clock: said in an NTE after its OBX.
    let second_obx = segs.iter().position(|s| s.contains("|149530^")).unwrap();
    assert!(segs[second_obx + 1].starts_with("NTE|") && segs[second_obx + 1].contains("no-device-clock"), "{msg}");
    // Sensor-off is in OBX-8 (OFF) and, as the flag name, in the NTE after the first OBX.
    assert!(segs[segs.iter().position(|s| s.contains("|150456^")).unwrap() + 1].contains("sensor-off"));
}

#[test]
fn hl7_unknown_unit_is_empty_and_line_feeds_are_escaped_as_line_feeds() {
    let nom = Nomenclature::builtin();
    let ctx = context(None, None);
    // A vendor value whose unit has no MDC code: OBX-6 empty, not `0^^MDC`.
    let m = Measurement::numeric(MdcCode::UNMAPPED, d("13.5"), MdcCode::UNMAPPED).with_vendor("masimo", "SPHB");
    let msg = hl7v2::oru_r01(&[&obs(&ctx, m)], &nom, "M3", T).unwrap();
    let obx = first_metric(&msg);
    assert_eq!((obx[5], obx[6]), ("13.5", ""), "{msg}");
    assert!(!msg.contains("0^^MDC"), "{msg}");
    // LF is \X0A\ and CR is \X0D\ (HL7 v2 §2.7.3: the hex of the character itself).
    let mut s = String::new();
    hl7v2::escape(&mut s, "a\nb\rc");
    assert_eq!(s, "a\\X0A\\b\\X0D\\c");
}

/// A value shown while the sensor is off (Nonin holds the display ~10 s), in pulse search or with
/// low perfusion is marked questionable: OBX-8 `QUES` and a FHIR `interpretation`, not only an
/// NTE and an extension. A clean value has neither.
#[test]
fn questionable_values_are_flagged_in_obx8_and_fhir_interpretation() {
    let nom = Nomenclature::builtin();
    let ctx = context(p1(), None);
    for flag in [Flags::SENSOR_OFF, Flags::PULSE_SEARCH, Flags::LOW_PERFUSION, Flags::ARTIFACT] {
        let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT).with_flags(flag);
        let o = obs(&ctx, m);
        let msg = hl7v2::oru_r01(&[&o], &nom, "Q", T).unwrap();
        let obx = first_metric(&msg);
        assert_eq!((obx[5], obx[8]), ("97", "QUES"), "{flag:?}: {msg}");
        let v = json(&fhir::observation(&o, &nom));
        assert_eq!(v["valueQuantity"]["value"], 97);
        let i = &v["interpretation"][0];
        assert_eq!(
            (i["coding"][0]["system"].as_str(), i["coding"][0]["code"].as_str()),
            (Some(fhir::MEASUREMENT_STATUS_SYSTEM), Some("QUES")),
            "{v}"
        );
        assert!(i["text"].as_str().unwrap().contains(flag.names().next().unwrap()), "{v}");
    }
    let clean = obs(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT));
    let msg = hl7v2::oru_r01(&[&clean], &nom, "Q", T).unwrap();
    assert_eq!(first_metric(&msg)[8], "");
    assert!(json(&fhir::observation(&clean, &nom)).get("interpretation").is_none());
    // No value with the sensor off: OFF, and no interpretation next to the dataAbsentReason.
    let off = obs(
        &ctx,
        Measurement::absent(code::MDC_PULS_OXIM_SAT_O2, AbsentReason::Unavailable, unit::MDC_DIM_PERCENT).with_flags(Flags::SENSOR_OFF),
    );
    let msg = hl7v2::oru_r01(&[&off], &nom, "Q", T).unwrap();
    assert_eq!(first_metric(&msg)[8], "OFF");
    assert!(json(&fhir::observation(&off, &nom)).get("interpretation").is_none());
}

#[test]
fn canonical_form_has_the_documented_fields_and_round_trips() {
    let nom = Nomenclature::builtin();
    let ctx = context(p1(), Some("0012345678ABCDEF"));
    let m =
        Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97.50"), unit::MDC_DIM_PERCENT).with_flags(Flags::ARTIFACT).with_seq(Some(9));
    let o = obs(&ctx, m);
    let text = canonical::to_string(&o, &nom);
    assert!(text.contains(r#""value":97.50"#), "{text}");
    let v = json(&text);
    assert_eq!(v["metric"], "MDC_PULS_OXIM_SAT_O2");
    assert_eq!(v["code"], 150456);
    assert_eq!(v["unit"], "%");
    assert_eq!(v["flags"], serde_json::json!(["artifact"]));
    assert_eq!(v["device_time"], "2024-03-15T10:22:05Z");
    assert_eq!(v["id"], o.reading.id.to_string());
    assert_eq!(v["device"]["eui64"], "0012345678ABCDEF");
    let back = canonical::parse(&text, "gw-icu-1").unwrap();
    assert_eq!(back.reading, o.reading);
    assert_eq!(back.context.key(), o.context.key());
    // No device time: null, not absent.
    let none = Observation::new(
        ctx,
        Measurement::absent(code::MDC_PULS_OXIM_SAT_O2, AbsentReason::Unavailable, unit::MDC_DIM_PERCENT),
        T,
        None,
        Flags::NONE,
    );
    let v = json(&canonical::to_string(&none, &nom));
    assert!(v["device_time"].is_null());
    assert!(v["value"].is_null());
    assert_eq!(v["flags"], serde_json::json!(["unavailable", "no-device-clock"]));
}

/// A patient associated by the ADT feed: FHIR names it by its identifier (system from the
/// assigning authority) with the vital-signs profile and the visit as `encounter`; HL7 repeats
/// PID-3, PID-5, PV1-3 and PV1-19 as the feed sent them (escaped again where needed).
#[test]
fn an_adt_patient_reaches_fhir_and_hl7_as_received() {
    use medgw_protocols::hl7::{Cx, Hd, Pl, Xpn};
    let nom = Nomenclature::builtin();
    let adt = AdtFields {
        identifier: Cx {
            id: "4711".into(),
            assigning_authority: Hd {
                namespace: "STMARY".into(),
                universal_id: "2.16.840.1.113883.3.999".into(),
                universal_id_type: "ISO".into(),
            },
            id_type: "MR".into(),
        },
        name: Some(Xpn { family: "O^Brien".into(), given: "Ann".into(), ..Default::default() }),
        location: Some(Pl {
            point_of_care: "ICU".into(),
            room: "03".into(),
            bed: "B".into(),
            facility: Hd { namespace: "STMARY".into(), ..Default::default() },
            ..Default::default()
        }),
        visit: Some(Cx {
            id: "V100".into(),
            assigning_authority: Hd { namespace: "STMARY".into(), ..Default::default() },
            id_type: "VN".into(),
        }),
    };
    let system = AdtFields::system_of(&adt.identifier);
    assert_eq!(system.as_deref(), Some("urn:oid:2.16.840.1.113883.3.999"));
    let patient = Patient { id: "4711".into(), system, adt: Some(Box::new(adt)) };
    let ctx = context(Some(patient), None);
    let o = obs(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT));
    let v = json(&fhir::observation(&o, &nom));
    assert_eq!(v["subject"]["identifier"]["system"], "urn:oid:2.16.840.1.113883.3.999");
    assert_eq!(v["subject"]["identifier"]["value"], "4711");
    assert_eq!(v["encounter"]["type"], "Encounter");
    assert_eq!(v["encounter"]["identifier"]["value"], "V100");
    assert_eq!(v["encounter"]["identifier"]["system"], "STMARY");
    assert_eq!(v["category"][0]["coding"][0]["code"], "vital-signs", "{v}");
    assert!(v["meta"]["profile"].to_string().contains("vitalsigns"), "{v}");
    let text = hl7v2::oru_r01(&[&o], &nom, "M1", T).unwrap();
    let seg = |id: &str| text.split('\r').find(|s| s.starts_with(id)).unwrap_or_default().to_string();
    assert_eq!(seg("PID|"), "PID|||4711^^^STMARY&2.16.840.1.113883.3.999&ISO^MR||O\\S\\Brien^Ann^^^");
    let pv1 = seg("PV1|");
    let fields: Vec<&str> = pv1.split('|').collect();
    assert_eq!(fields[2], "I");
    assert_eq!(fields[3], "ICU^03^B^STMARY");
    assert_eq!(fields[19], "V100^^^STMARY^VN", "{pv1}");
    // The canonical form keeps what the feed said, for consumers of the canonical topic.
    let c = json(&canonical::to_string(&o, &nom));
    assert_eq!(c["patient"]["adt"]["visit"]["id"], "V100");
    // A configured binding is unchanged: PID-3 from id and system, the configured bed in PV1-3.
    let text = hl7v2::oru_r01(
        &[&obs(&context(p1(), None), Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT))],
        &nom,
        "M2",
        T,
    )
    .unwrap();
    assert!(text.contains("\rPID|||p1^^^^MR||^^^^^^U\rPV1||I|ICU^^BED4^HOSP\r"), "{text}");
}

mod fhir_any_text {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Whatever text devices and configuration carry and whatever the value, the FHIR
        /// Observation (written by hand, `fhir_observation.rs`) is valid JSON whose texts read
        /// back as given and whose numbers keep their digits.
        #[test]
        fn the_fhir_observation_is_json_for_any_text_and_value(
            name in any::<String>(),
            patient in proptest::option::of(any::<String>()),
            text in any::<String>(),
            mantissa in any::<i64>(),
            exponent in -9i8..=6,
            samples in proptest::collection::vec(any::<i32>(), 0..8),
            kind in 0u8..4,
            flags in any::<u32>(),
        ) {
            let nom = Nomenclature::builtin();
            let mut c = (*context(patient.clone().map(|p| Patient::configured(&p, None)), None)).clone();
            c.name = name.clone();
            let ctx = Arc::new(c);
            let decimal = Decimal::new(mantissa, exponent);
            let value = match (kind, decimal) {
                (0, Some(d)) => Value::Numeric(d),
                (1, _) => Value::Enumeration(Enumeration { code: None, text: text.clone() }),
                (2, _) => Value::Waveform(Waveform { period_us: 8000, samples: samples.clone() }),
                _ => Value::Absent(AbsentReason::Unavailable),
            };
            let m = Measurement {
                metric: code::MDC_PULS_OXIM_SAT_O2,
                vendor: None,
                value: value.clone(),
                unit: unit::MDC_DIM_PERCENT,
                device_time: None,
                seq: None,
                flags: Flags(flags),
                status: Status::Final,
            };
            let o = Observation::new(ctx, m, T, Some(T), Flags::NONE);
            let out = fhir::observation(&o, &nom);
            let v: Json = serde_json::from_str(&out).map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
            prop_assert_eq!(v["device"]["display"].as_str().map(String::from), Some(format!("Philips MX450 ({name})")));
            if let Some(p) = &patient {
                prop_assert_eq!(v["subject"]["reference"].as_str().map(String::from), Some(format!("Patient/{p}")));
            }
            match value {
                // Compared as text: serde_json's Value would round the number to an f64.
                Value::Numeric(d) => prop_assert!(out.contains(&format!("\"valueQuantity\":{{\"value\":{d},")), "{}", out),
                Value::Enumeration(_) => prop_assert_eq!(v["valueCodeableConcept"]["text"].as_str(), Some(text.as_str())),
                Value::Waveform(_) => {
                    let data: Vec<i32> = v["valueSampledData"]["data"].as_str().unwrap().split(' ').filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
                    prop_assert_eq!(data, samples);
                }
                _ => prop_assert!(v["dataAbsentReason"].is_object()),
            }
        }
    }
}
