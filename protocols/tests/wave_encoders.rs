//! Wave segment encoders: the reference example E3 (hospital-integration.md §5, 200 ms of DF2
//! pleth) as FHIR `valueSampledData` and as PCD-01 `NA` with its child rows, marks as `E`/`L`/`U`,
//! a scaled ECG segment, and the canonical form.

use medgw_protocols::decimal::Decimal;
use medgw_protocols::encode::wave;
use medgw_protocols::mdc::{code, unit};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::*;
use medgw_protocols::time::Timestamp;
use medgw_protocols::wave::{SampleMarks, SamplePeriod, WaveScale, WaveSegment};
use serde_json::Value as Json;

/// 2026-11-25T10:30:00Z, E3's OBR-7.
const T: Timestamp = Timestamp(1_795_602_600_000);

/// E3's samples.
const E3: [i32; 15] = [128, 131, 140, 155, 172, 188, 199, 203, 198, 186, 171, 158, 149, 143, 139];

fn ctx(patient: bool) -> DeviceContext {
    DeviceContext {
        gateway: "gw-icu-1".into(),
        name: "bed4-spo2".into(),
        protocol: "nonin-df2".into(),
        port: "/dev/ttyUSB0".into(),
        identity: DeviceIdentity { eui64: Some("0012345678ABCDEF".parse().unwrap()), ..DeviceIdentity::default() },
        location: Location { site: "HOSP".into(), unit: "4E".into(), room: Some("136".into()), bed: "B".into() },
        patient: patient.then(|| Patient::configured("MRN12345", Some("urn:oid:1.2.3.4.5".into()))),
        gateway_eui64: None,
    }
}

fn e3() -> WaveSegment {
    WaveSegment {
        metric: code::MDC_PULS_OXIM_PLETH,
        period: SamplePeriod::per_second(75),
        scale: WaveScale::identity(unit::MDC_DIM_DIMLESS, 0, 255),
        start: T,
        seq: 7,
        after_gap: false,
        flags: Flags::NONE,
        samples: E3.to_vec(),
        marks: Vec::new(),
    }
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn num(v: &Json) -> Decimal {
    v.to_string().parse().unwrap()
}

#[test]
fn e3_as_fhir_sampled_data() {
    let nom = Nomenclature::builtin();
    let j: Json = serde_json::from_str(&wave::fhir(&e3(), &ctx(true), &nom, Timestamp(T.0 + 300))).unwrap();
    assert_eq!(j["resourceType"], "Observation");
    assert_eq!(j["status"], "final");
    let sd = &j["valueSampledData"];
    assert_eq!(num(&sd["origin"]["value"]), d("0"));
    assert_eq!((sd["origin"]["system"].as_str(), sd["origin"]["code"].as_str()), (Some("http://unitsofmeasure.org"), Some("1")));
    assert_eq!(num(&sd["period"]), d("13.333333"));
    assert_eq!(num(&sd["factor"]), d("1"));
    assert_eq!((num(&sd["lowerLimit"]), num(&sd["upperLimit"])), (d("0"), d("255")));
    assert_eq!(sd["dimensions"], 1);
    assert_eq!(sd["data"], "128 131 140 155 172 188 199 203 198 186 171 158 149 143 139");
    let coding = &j["code"]["coding"][0];
    assert_eq!((coding["system"].as_str(), coding["code"].as_str()), (Some("urn:iso:std:iso:11073:10101"), Some("150452")));
    assert_eq!(coding["display"], "MDC_PULS_OXIM_PLETH");
    // 15 samples at 75/s: 200 ms.
    assert_eq!(j["effectivePeriod"]["start"], "2026-11-25T10:30:00Z");
    assert_eq!(j["effectivePeriod"]["end"], "2026-11-25T10:30:00.200Z");
    assert_eq!(j["subject"]["identifier"]["value"], "MRN12345");
    assert!(j["meta"].is_null(), "bound: no unassociated tag");
    let seq = j["extension"].as_array().unwrap().iter().find(|e| e["url"].as_str().unwrap().ends_with("wave-sequence")).unwrap();
    assert_eq!(seq["valueUnsignedInt"], 7);
    // Same segment, same id; another sequence number, another id.
    let again: Json = serde_json::from_str(&wave::fhir(&e3(), &ctx(true), &nom, T)).unwrap();
    assert_eq!(again["id"], j["id"]);
    let mut other = e3();
    other.seq = 8;
    assert_ne!(wave::segment_id(&ctx(true), &other), wave::segment_id(&ctx(true), &e3()));
}

#[test]
fn marks_become_e_l_u_and_unassociated_segments_name_the_bed() {
    let nom = Nomenclature::builtin();
    let mut seg = e3();
    seg.after_gap = true;
    seg.marks = vec![SampleMarks::NONE; 15];
    seg.marks[0] = SampleMarks::MISSING;
    seg.marks[3] = SampleMarks::INVALID;
    seg.marks[7] = SampleMarks::ABOVE;
    seg.marks[12] = SampleMarks::BELOW;
    seg.marks[13] = SampleMarks::PACER;
    let j: Json = serde_json::from_str(&wave::fhir(&seg, &ctx(false), &nom, T)).unwrap();
    assert_eq!(j["valueSampledData"]["data"], "E 131 140 E 172 188 199 U 198 186 171 158 L 143 139");
    assert_eq!(j["subject"]["type"], "Location");
    assert_eq!(j["subject"]["identifier"]["value"], "HOSP/4E/136/B");
    assert_eq!(j["meta"]["tag"][0]["code"], "unassociated");
    assert!(j["extension"].as_array().unwrap().iter().any(|e| e["url"].as_str().unwrap().ends_with("wave-after-gap")));

    let m = wave::hl7(&seg, &ctx(false), &nom, "WAV0001", T);
    let obx: Vec<&str> = m.split('\r').filter(|s| s.starts_with("OBX")).collect();
    let f: Vec<&str> = obx[3].split('|').collect();
    // Invalid and missing samples are empty components; L/U keep the device's number.
    assert_eq!(f[5], "^131^140^^172^188^199^203^198^186^171^158^149^143^139");
    let nte = m.split('\r').find(|s| s.starts_with("NTE")).unwrap();
    assert_eq!(nte, "NTE|1|L|medgw-wave seq=7: missing=1 invalid=1 below-range=1 above-range=1 pacer=1 after-gap");
}

#[test]
fn e3_as_pcd01_na_with_rate_and_range_rows() {
    let nom = Nomenclature::builtin();
    let m = wave::hl7(&e3(), &ctx(true), &nom, "WAV0001", Timestamp(T.0 + 1000));
    let segs: Vec<&str> = m.split('\r').filter(|s| !s.is_empty()).collect();
    assert!(segs[0].starts_with("MSH|^~\\&|MEDGW^"));
    assert!(segs[0].contains("|ORU^R01^ORU_R01|WAV0001|P|2.6|"));
    assert!(segs[0].ends_with("|IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"));
    assert!(segs[1].starts_with("PID|||MRN12345^^^urn:oid:1.2.3.4.5^MR"));
    assert!(segs[2].starts_with("PV1||I|4E^136^B^HOSP"));
    let obr: Vec<&str> = segs[3].split('|').collect();
    assert_eq!((obr[0], obr[7], obr[8]), ("OBR", "20261125103000+0000", "20261125103000.200+0000"));
    let obx: Vec<Vec<&str>> = segs[4..10].iter().map(|s| s.split('|').collect()).collect();
    // The containment tree before the wave: MDS, VMD, channel (PCD-01).
    let tree: Vec<(&str, &str)> = obx[..3].iter().map(|o| (o[3], o[4])).collect();
    assert_eq!(
        tree,
        [
            ("69641^MDC_DEV_ANALY_SAT_O2_MDS^MDC", "1.0.0.0"),
            ("69642^MDC_DEV_ANALY_SAT_O2_VMD^MDC", "1.1.0.0"),
            ("69643^MDC_DEV_ANALY_SAT_O2_CHAN^MDC", "1.1.1.0")
        ]
    );
    assert_eq!(
        &obx[3][..7],
        &[
            "OBX",
            "4",
            "NA",
            "150452^MDC_PULS_OXIM_PLETH^MDC",
            "1.1.1.1",
            "128^131^140^155^172^188^199^203^198^186^171^158^149^143^139",
            "262656^MDC_DIM_DIMLESS^MDC"
        ]
    );
    assert_eq!(obx[3][11], "R");
    assert_eq!(obx[3][18], "0012345678ABCDEF^^0012345678ABCDEF^EUI-64");
    assert_eq!(&obx[4][..7], &["OBX", "5", "NM", "0^MDC_ATTR_SAMP_RATE^MDC", "1.1.1.1.1", "75", "264608^MDC_DIM_PER_SEC^MDC"]);
    assert_eq!(&obx[5][..7], &["OBX", "6", "NR", "0^MDC_ATTR_DATA_RANGE^MDC", "1.1.1.1.2", "0^255", "262656^MDC_DIM_DIMLESS^MDC"]);
    assert_eq!(segs.len(), 10, "{segs:?}");
}

/// An IntelliVue-style ECG segment: raw 0..16383 over -40.96..40.955 mV.
fn ecg() -> WaveSegment {
    WaveSegment {
        metric: code::MDC_ECG_ELEC_POTL_II,
        period: SamplePeriod::from_micros(2000),
        scale: WaveScale {
            unit: unit::MDC_DIM_MILLI_VOLT,
            lower_raw: 0,
            upper_raw: 16383,
            lower: d("-40.96"),
            upper: d("40.955"),
            min_raw: 0,
            max_raw: 16383,
        },
        start: T,
        seq: 0,
        after_gap: true,
        flags: Flags::NONE,
        samples: vec![8192, 8392, 8000],
        marks: Vec::new(),
    }
}

#[test]
fn scaled_ecg_keeps_raw_data_with_factor_and_origin() {
    let nom = Nomenclature::builtin();
    let j: Json = serde_json::from_str(&wave::fhir(&ecg(), &ctx(true), &nom, T)).unwrap();
    let sd = &j["valueSampledData"];
    assert_eq!((num(&sd["origin"]["value"]), sd["origin"]["code"].as_str()), (d("-40.96"), Some("mV")));
    assert_eq!((num(&sd["factor"]), num(&sd["period"])), (d("0.005"), d("2")));
    assert_eq!((num(&sd["lowerLimit"]), num(&sd["upperLimit"])), (d("-40.96"), d("40.955")));
    assert_eq!(sd["data"], "8192 8392 8000");
    // origin + factor × data is the physical value, which PCD-01 writes.
    let m = wave::hl7(&ecg(), &ctx(true), &nom, "W2", T);
    let obx: Vec<&str> = m.split('\r').filter(|s| s.starts_with("OBX")).collect();
    assert_eq!(obx[3].split('|').nth(5), Some("0^1^-0.96"));
    assert_eq!(obx[3].split('|').nth(6), Some("266418^MDC_DIM_MILLI_VOLT^MDC"));
    assert_eq!(obx[4].split('|').nth(5), Some("500"));
    assert_eq!(obx[5].split('|').nth(5), Some("-40.96^40.955"));
}

#[test]
fn canonical_form_is_the_segment() {
    let nom = Nomenclature::builtin();
    let mut seg = ecg();
    seg.marks = vec![SampleMarks::NONE, SampleMarks::PACER.union(SampleMarks::QRS), SampleMarks::NONE];
    let j: Json = serde_json::from_str(&wave::canonical(&seg, &ctx(false), &nom)).unwrap();
    assert_eq!(j["kind"], "wave");
    assert_eq!(j["metric"], "MDC_ECG_ELEC_POTL_II");
    assert_eq!((j["code"].as_u64(), j["unit"].as_str(), j["seq"].as_u64()), (Some(131330), Some("mV"), Some(0)));
    assert_eq!(j["samples"], serde_json::json!([8192, 8392, 8000]));
    assert_eq!(j["marks"], serde_json::json!([{"index": 1, "marks": ["pacer", "qrs"]}]));
    assert_eq!((num(&j["rate_hz"]), num(&j["scale"]["factor"])), (d("500"), d("0.005")));
    assert_eq!(j["after_gap"], true);
    assert_eq!(j["start"], "2026-11-25T10:30:00Z");
    assert_eq!(j["end"], "2026-11-25T10:30:00.006Z");
}
