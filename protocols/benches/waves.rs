//! Waveform path cost: segmenting ECG at 500 samples/s arriving in 256 ms chunks (IntelliVue's
//! wave result period), and encoding a 1 s ECG segment as FHIR, PCD-01 and canonical JSON. The
//! issue's load is 32 beds × (500 + 125) samples/s, i.e. 64 segments a second.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medgw_protocols::encode::wave;
use medgw_protocols::mdc::{code, unit};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::*;
use medgw_protocols::wave::{Continuity, SamplePeriod, Segmenter, SegmenterConfig, WaveChunk, WaveScale};
use medgw_protocols::Timestamp;

fn scale() -> WaveScale {
    WaveScale {
        unit: unit::MDC_DIM_MILLI_VOLT,
        lower_raw: 0,
        upper_raw: 16383,
        lower: "-40.96".parse().unwrap(),
        upper: "40.955".parse().unwrap(),
        min_raw: 0,
        max_raw: 16383,
    }
}

fn chunk(k: i64) -> WaveChunk {
    WaveChunk {
        metric: code::MDC_ECG_ELEC_POTL_II,
        period: SamplePeriod::from_micros(2000),
        scale: scale(),
        start: Timestamp(1_795_602_600_000 + k * 256),
        continuity: if k == 0 { Continuity::Broken } else { Continuity::Continuous },
        flags: Flags::NONE,
        samples: (0..128).map(|i| 8192 + ((i * 37 + k as i32) % 400)).collect(),
        marks: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("waves");
    let chunks: Vec<WaveChunk> = (0..32).map(chunk).collect();
    g.throughput(Throughput::Elements(32 * 128));
    g.bench_function("segment 32 chunks of 128 ECG samples", |b| {
        let mut out = Vec::with_capacity(16);
        b.iter(|| {
            let mut s = Segmenter::new(SegmenterConfig::default());
            out.clear();
            for c in &chunks {
                s.push(c, &mut out).unwrap();
            }
            out.len()
        })
    });
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let mut segments = Vec::new();
    for c in &chunks {
        seg.push(c, &mut segments).unwrap();
    }
    let one = segments.remove(0);
    let nom = Nomenclature::builtin();
    let ctx = DeviceContext {
        gateway: "gw1".into(),
        name: "bed4-monitor".into(),
        protocol: "intellivue".into(),
        port: "/dev/ttyUSB0".into(),
        identity: DeviceIdentity { eui64: Some("0012345678ABCDEF".parse().unwrap()), ..Default::default() },
        location: Location { site: "HOSP".into(), unit: "ICU".into(), room: None, bed: "BED4".into() },
        patient: Some(Patient::configured("p1", None)),
        gateway_eui64: None,
    };
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(8192);
    g.bench_function("fhir 1 s ECG segment", |b| {
        b.iter(|| {
            buf.clear();
            wave::write_fhir(&mut buf, &one, &ctx, &nom, Timestamp(0));
            buf.len()
        })
    });
    g.bench_function("canonical 1 s ECG segment", |b| {
        b.iter(|| {
            buf.clear();
            wave::write_canonical(&mut buf, &one, &ctx, &nom);
            buf.len()
        })
    });
    g.bench_function("pcd-01 1 s ECG segment", |b| b.iter(|| wave::hl7(&one, &ctx, &nom, "W1", Timestamp(0)).len()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
