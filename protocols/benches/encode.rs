//! Encoder throughput: canonical JSON, FHIR Observation and HL7 ORU^R01 per observation.
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medgw_protocols::encode::{canonical, fhir, hl7v2};
use medgw_protocols::mdc::{code, unit};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::*;
use medgw_protocols::Timestamp;

fn observation() -> Observation {
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
    let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, "97".parse().unwrap(), unit::MDC_DIM_PERCENT);
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
