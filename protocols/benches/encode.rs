//! Encoder throughput: canonical JSON, FHIR Observation and HL7 ORU^R01 per observation.
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medgw_protocols::encode::{canonical, fhir, hl7v2};
use medgw_protocols::mdc::{code, unit};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::*;
use medgw_protocols::Timestamp;

fn observation() -> Observation {
    observation_of(code::MDC_PULS_OXIM_SAT_O2, "97", unit::MDC_DIM_PERCENT)
}

fn observation_of(metric: medgw_protocols::mdc::MdcCode, value: &str, u: medgw_protocols::mdc::MdcCode) -> Observation {
    let ctx = Arc::new(DeviceContext {
        gateway: "gw1".into(),
        name: "bed4-spo2".into(),
        protocol: "nonin-df8".into(),
        port: "/dev/ttyUSB0".into(),
        identity: DeviceIdentity { eui64: Some("0012345678ABCDEF".parse().unwrap()), ..Default::default() },
        location: Location { site: "HOSP".into(), unit: "ICU".into(), room: None, bed: "BED4".into() },
        patient: Some(Patient::configured("p1", None)),
        gateway_eui64: None,
    });
    let m = Measurement::numeric(metric, value.parse().unwrap(), u);
    Observation::new(ctx, m, Timestamp(1_710_498_125_300), Some(Timestamp(1_710_498_125_000)), Flags::NONE)
}

fn bench(c: &mut Criterion) {
    let nom = Nomenclature::builtin();
    let o = observation();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(2048);
    g.bench_function("canonical", |b| {
        b.iter(|| {
            buf.clear();
            canonical::write(&mut buf, &o, &nom);
            buf.len()
        })
    });
    g.bench_function("fhir", |b| {
        b.iter(|| {
            buf.clear();
            fhir::write_observation(&mut buf, &o, &nom);
            buf.len()
        })
    });
    g.bench_function("hl7v2", |b| b.iter(|| hl7v2::oru_r01(&[&o], &nom, "M1", Timestamp(0)).map(|m| m.len())));
    g.finish();
    // A set as a pulse oximeter reports it for one instant (one Masimo line: SpO2, pulse rate,
    // perfusion index, and three more), grouped and encoded as one message; per observation.
    let set: Vec<Observation> = [
        (code::MDC_PULS_OXIM_SAT_O2, "97", unit::MDC_DIM_PERCENT),
        (code::MDC_PULS_OXIM_PULS_RATE, "72", unit::MDC_DIM_BEAT_PER_MIN),
        (code::MDC_PULS_OXIM_PERF_REL, "2.5", unit::MDC_DIM_PERCENT),
        (code::MDC_PLETH_PULS_RATE, "72", unit::MDC_DIM_BEAT_PER_MIN),
        (code::MDC_RESP_RATE, "14", unit::MDC_DIM_RESP_PER_MIN),
        (code::MDC_TEMP_BODY, "37.2", unit::MDC_DIM_DEGC),
    ]
    .into_iter()
    .map(|(m, v, u)| observation_of(m, v, u))
    .collect();
    let mut g = c.benchmark_group("encode-set");
    g.throughput(Throughput::Elements(set.len() as u64));
    g.bench_function("hl7v2-set-of-6", |b| {
        b.iter(|| {
            hl7v2::group_sets(&set, hl7v2::SetLimits::default())
                .iter()
                .filter_map(|s| hl7v2::oru_r01_set(s, &nom, Timestamp(0)))
                .map(|m| m.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
