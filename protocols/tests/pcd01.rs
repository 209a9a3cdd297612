//! IHE PCD-01 observation sets: one `ORU^R01` per set of one device's observations for one
//! instant, with the MDS/VMD/channel/metric containment tree in OBX-4; the grouping, the set's
//! MSH-10, OBX-17 method and OBX-20 site.

use std::sync::Arc;

use medgw_protocols::decimal::Decimal;
use medgw_protocols::encode::hl7v2::{self, SetLimits};
use medgw_protocols::mdc::{code, unit, MdcCode};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::*;
use medgw_protocols::time::Timestamp;

mod pcd01_check;

/// 2024-03-15T10:22:05Z.
const T: Timestamp = Timestamp(1_710_498_125_000);

fn context(protocol: &str, name: &str) -> Arc<DeviceContext> {
    Arc::new(DeviceContext {
        gateway: "gw-icu-1".into(),
        name: name.into(),
        protocol: protocol.into(),
        port: "/dev/ttyUSB0".into(),
        location: Location { site: "HOSP".into(), unit: "ICU".into(), room: Some("12".into()), bed: "BED4".into() },
        patient: Some(Patient::configured("PAT123", Some("HOSP".into()))),
        ..Default::default()
    })
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn at(ctx: &Arc<DeviceContext>, m: Measurement, t: Timestamp) -> Observation {
    Observation::new(ctx.clone(), m, t, Some(t), Flags::NONE)
}

fn bp(sys: &str, dia: &str, mean: &str) -> Measurement {
    Measurement {
        metric: code::MDC_PRESS_BLD_NONINV,
        vendor: None,
        value: Value::Compound(
            vec![
                Component { metric: code::MDC_PRESS_BLD_NONINV_SYS, value: Scalar::Numeric(d(sys)) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_DIA, value: Scalar::Numeric(d(dia)) },
                Component { metric: code::MDC_PRESS_BLD_NONINV_MEAN, value: Scalar::Numeric(d(mean)) },
            ]
            .into(),
        ),
        unit: unit::MDC_DIM_MMHG,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    }
}

/// (OBX-3 code, OBX-4) of every OBX row.
fn tree(msg: &str) -> Vec<(String, String)> {
    msg.split('\r')
        .filter(|s| s.starts_with("OBX|"))
        .map(|s| {
            let f: Vec<&str> = s.split('|').collect();
            (f[3].split('^').next().unwrap().to_string(), f[4].to_string())
        })
        .collect()
}

fn owned(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// What a monitor reports for one instant (SpO2, pulse rate, a BP panel with its pulse rate,
/// a temperature) is one message: MDS, then per subsystem its VMD, channel(s) and metrics; the
/// BP panel is one channel with its three members.
#[test]
fn a_set_is_one_message_with_the_containment_tree() {
    let nom = Nomenclature::builtin();
    let ctx = context("intellivue", "bed4-monitor");
    let obs = [
        at(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT), T),
        at(&ctx, bp("120", "80", "93"), T),
        at(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_PULS_RATE, d("72"), unit::MDC_DIM_BEAT_PER_MIN), T),
        at(&ctx, Measurement::numeric(code::MDC_PULS_RATE_NON_INV, d("71"), unit::MDC_DIM_BEAT_PER_MIN), T),
        at(&ctx, Measurement::numeric(code::MDC_TEMP_BODY, d("37.2"), unit::MDC_DIM_DEGC), T),
    ];
    let sets = hl7v2::group_sets(&obs, SetLimits::default());
    assert_eq!(sets.len(), 1, "one device, one instant: one set");
    let msg = hl7v2::oru_r01_set(&sets[0], &nom, T).unwrap();
    assert_eq!(
        tree(&msg),
        owned(&[
            ("69965", "1.0.0.0"),
            ("69642", "1.1.0.0"),
            ("69643", "1.1.1.0"),
            ("150456", "1.1.1.1"),
            ("149530", "1.1.1.2"),
            ("70686", "1.2.0.0"),
            ("70687", "1.2.1.0"),
            ("149546", "1.2.1.1"),
            ("70687", "1.2.2.0"),
            ("150021", "1.2.2.1"),
            ("150022", "1.2.2.2"),
            ("150023", "1.2.2.3"),
            ("69902", "1.3.0.0"),
            ("69903", "1.3.1.0"),
            ("150364", "1.3.1.1"),
        ]),
        "{msg}"
    );
    pcd01_check::check(&msg).unwrap();
    assert_eq!(msg.matches("MSH|").count(), 1);
    // OBX-18 on every row, description rows included (SDPi R8117: MDS and VMD level).
    let eui = ctx.eui64().0.to_string();
    for row in msg.split('\r').filter(|s| s.starts_with("OBX")) {
        assert_eq!(row.split('|').nth(18), Some(format!("{eui}^MEDGW^{eui}^EUI-64").as_str()), "{row}");
    }
    // MSH-10 and OBR-3: the set's id.
    let id = hl7v2::set_message_id(&sets[0]).to_string();
    let msh: Vec<&str> = msg.split('|').collect();
    assert_eq!(msh[9], id);
    assert!(msg.contains(&format!("OBR|1||{id}^MEDGW^")));
}

/// The MDS row names the kind of system by protocol; a pulse oximeter's generic metrics stay
/// in its SpO2 VMD, a ventilator's in its ventilator VMD, a GATT device's MDS is its 11073-20601
/// specialisation.
#[test]
fn the_mds_row_names_the_kind_of_device() {
    let nom = Nomenclature::builtin();
    for (protocol, mds, vmd_of_unmapped) in [
        ("masimo", "69641", "69642"),
        ("nonin-df8", "69641", "69642"),
        ("medgw-link", "69965", "69966"),
        ("medibus", "70001", "70002"),
        ("intellivue", "69965", "69966"),
        ("gatt-blood-pressure", "528391", "69966"),
        ("gatt-temperature", "528392", "69966"),
    ] {
        let ctx = context(protocol, "dev");
        let o = at(&ctx, Measurement::numeric(MdcCode::UNMAPPED, d("13.5"), MdcCode::UNMAPPED).with_vendor("x", "Y"), T);
        let msg = hl7v2::oru_r01_set(&[&o], &nom, T).unwrap();
        let t = tree(&msg);
        assert_eq!((t[0].0.as_str(), t[1].0.as_str()), (mds, vmd_of_unmapped), "{protocol}: {msg}");
        pcd01_check::check(&msg).unwrap();
    }
}

/// Sets are runs of consecutive observations of one device and one effective time; a metric
/// that repeats starts a new set; limits bound a set; a single observation is a set of one.
#[test]
fn group_sets_splits_on_device_time_repeats_and_limits() {
    let a = context("masimo", "a");
    let b = context("masimo", "b");
    let spo2 = |c: &Arc<DeviceContext>, t: i64| {
        at(c, Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT), Timestamp(T.0 + t))
    };
    let pr = |c: &Arc<DeviceContext>, t: i64| {
        at(c, Measurement::numeric(code::MDC_PULS_OXIM_PULS_RATE, d("72"), unit::MDC_DIM_BEAT_PER_MIN), Timestamp(T.0 + t))
    };
    let obs = [spo2(&a, 0), pr(&a, 0), spo2(&a, 1000), pr(&a, 1000), spo2(&b, 1000), pr(&b, 1000), spo2(&b, 1000), spo2(&a, 2000)];
    let sizes = |sets: &[Vec<&Observation>]| sets.iter().map(Vec::len).collect::<Vec<_>>();
    let sets = hl7v2::group_sets(&obs, SetLimits::default());
    // a@0 | a@1000 | b@1000 | b@1000 again (SpO2 repeats) | a@2000
    assert_eq!(sizes(&sets), [2, 2, 2, 1, 1]);
    assert!(std::ptr::eq(sets[2][0], &obs[4]) && std::ptr::eq(sets[3][0], &obs[6]));
    // An equal context in another Arc is the same device.
    let a2 = Arc::new((*a).clone());
    assert_eq!(sizes(&hl7v2::group_sets([&spo2(&a, 0), &pr(&a2, 0)], SetLimits::default())), [2]);
    // Bounded: at most 1 metric row per set here; a BP panel (3 rows) alone exceeds it and is
    // still sent, as a set of its own.
    let one = SetLimits { max_metrics: 1, ..SetLimits::default() };
    assert_eq!(sizes(&hl7v2::group_sets(&obs[..4], one)), [1, 1, 1, 1]);
    let panel = at(&a, bp("120", "80", "93"), T);
    assert_eq!(sizes(&hl7v2::group_sets([&panel, &obs[0]], one)), [1, 1]);
    // Bytes: a long waveform fills a set by itself.
    let wave = Measurement {
        metric: code::MDC_PULS_OXIM_PLETH,
        vendor: None,
        value: Value::Waveform(Waveform { period_us: 13_333, samples: vec![100; 5000] }),
        unit: unit::MDC_DIM_DIMLESS,
        device_time: None,
        seq: None,
        flags: Flags::NONE,
        status: Status::Final,
    };
    let w = at(&a, wave, T);
    assert_eq!(sizes(&hl7v2::group_sets([&w, &obs[0], &obs[1]], SetLimits { max_bytes: 8 * 1024, ..SetLimits::default() })), [1, 2]);
    assert_eq!(sizes(&hl7v2::group_sets([&obs[0]], SetLimits::default())), [1]);
    assert!(hl7v2::group_sets(std::iter::empty(), SetLimits::default()).is_empty());
}

/// MSH-10 of a set: the observation id for a set of one (as before sets), otherwise derived
/// from the members' ids: the same set gives the same id, any other set another.
#[test]
fn set_message_id_is_deterministic_and_unique() {
    let ctx = context("masimo", "a");
    let s = at(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT), T);
    let p = at(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_PULS_RATE, d("72"), unit::MDC_DIM_BEAT_PER_MIN), T);
    assert_eq!(hl7v2::set_message_id(&[&s]), s.reading.id);
    let both = hl7v2::set_message_id(&[&s, &p]);
    assert_eq!(both, hl7v2::set_message_id(&[&s.clone(), &p.clone()]));
    assert_ne!(both, s.reading.id);
    assert_ne!(both, p.reading.id);
    assert_ne!(both, hl7v2::set_message_id(&[&p, &s]));
    // Pinned: a change of the derivation would break consumers' de-duplication across versions.
    let mut name = b"pcd01-set".to_vec();
    name.extend_from_slice(s.reading.id.as_bytes());
    name.extend_from_slice(p.reading.id.as_bytes());
    assert_eq!(both, uuid::Uuid::new_v5(&ID_NAMESPACE, &name));
}

/// OBX-17 method where the metric says how it was measured (NIBP: non-invasive; arterial line:
/// invasive), OBX-20 site where the GATT thermometer says it (Temperature Type), nothing where
/// the device says nothing.
#[test]
fn method_and_site_where_the_device_says_them() {
    let nom = Nomenclature::builtin();
    let ctx = context("gatt-temperature", "thermo");
    let field = |msg: &str, code: &str, n: usize| -> String {
        let row = msg.split('\r').find(|s| s.contains(&format!("|{code}^"))).unwrap_or_else(|| panic!("{code}: {msg}"));
        row.split('|').nth(n).unwrap_or("").to_string()
    };
    let nibp = at(&ctx, bp("120", "80", "93"), T);
    let msg = hl7v2::oru_r01_set(&[&nibp], &nom, T).unwrap();
    for member in ["150021", "150022", "150023"] {
        assert_eq!(field(&msg, member, 17), "17146006^Arterial pressure monitoring, non-invasive method^SCT");
    }
    let art = at(&ctx, Measurement::numeric(code::MDC_PRESS_BLD_ART_MEAN, d("90"), unit::MDC_DIM_MMHG), T);
    let msg = hl7v2::oru_r01_set(&[&art], &nom, T).unwrap();
    assert_eq!(field(&msg, "150035", 17), "77938009^Arterial pressure monitoring, invasive method^SCT");
    let spo2 = at(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT), T);
    let msg = hl7v2::oru_r01_set(&[&spo2], &nom, T).unwrap();
    assert_eq!((field(&msg, "150456", 17), field(&msg, "150456", 20)), (String::new(), String::new()));
    for (ty, site) in [("9", "42859004^Tympanic membrane structure^SCT"), ("1", "91470000^Axillary region structure^SCT"), ("2", "")] {
        let m = Measurement::numeric(code::MDC_TEMP_BODY, d("37.2"), unit::MDC_DIM_DEGC).with_vendor("gatt", format!("2A1C.type.{ty}"));
        let msg = hl7v2::oru_r01_set(&[&at(&ctx, m, T)], &nom, T).unwrap();
        assert_eq!(field(&msg, "150364", 20), site, "{msg}");
        assert_eq!(field(&msg, "150364", 17), "");
        pcd01_check::check(&msg).unwrap();
    }
}

/// The structure check can fail: a metric without its channel row, rows out of order, an
/// OBX-18 that is not an EUI-64, a missing profile.
#[test]
fn the_pcd01_structure_check_can_fail() {
    let nom = Nomenclature::builtin();
    let ctx = context("masimo", "a");
    let s = at(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, d("97"), unit::MDC_DIM_PERCENT), T);
    let p = at(&ctx, Measurement::numeric(code::MDC_PULS_OXIM_PULS_RATE, d("72"), unit::MDC_DIM_BEAT_PER_MIN), T);
    let msg = hl7v2::oru_r01_set(&[&s, &p], &nom, T).unwrap();
    pcd01_check::check(&msg).unwrap();
    let segs: Vec<&str> = msg.split('\r').filter(|s| !s.is_empty()).collect();
    let renumber = |segs: Vec<&str>| -> String {
        let mut n = 0;
        segs.iter()
            .map(|s| match s.strip_prefix("OBX|") {
                Some(rest) => {
                    n += 1;
                    format!("OBX|{n}|{}\r", rest.split_once('|').unwrap().1)
                }
                None => format!("{s}\r"),
            })
            .collect()
    };
    let no_channel: Vec<&str> = segs.iter().copied().filter(|s| !s.contains("|1.1.1.0|")).collect();
    assert!(pcd01_check::check(&renumber(no_channel)).unwrap_err().contains("does not follow"));
    let mut swapped = segs.clone();
    let (a, b) = (swapped.len() - 2, swapped.len() - 1);
    swapped.swap(a, b);
    assert!(pcd01_check::check(&renumber(swapped)).is_err());
    let eui = ctx.eui64().0.to_string();
    assert!(pcd01_check::check(&msg.replacen(&format!("{eui}^MEDGW^{eui}^EUI-64"), "sn:Masimo::1^MEDGW", 1))
        .unwrap_err()
        .contains("OBX-18"));
    assert!(pcd01_check::check(&msg.replace("1.3.6.1.4.1.19376.1.6.1.1.1", "1.2.3")).unwrap_err().contains("MSH-21"));
    // What medgw sent before sets: one OBX at 1.1.1.1 and no tree.
    let old = segs.iter().copied().filter(|s| !s.starts_with("OBX") || s.contains("|150456^")).collect::<Vec<_>>();
    assert!(pcd01_check::check(&renumber(old)).unwrap_err().contains("MDS row"));
}
