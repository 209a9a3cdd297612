//! Masimo decode throughput: simulator lines (Radical-7 style, ~140 bytes, 8 values each) fed
//! in 256-byte chunks. Target: at least 50 MB/s on one core (line protocol).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medgw_protocols::decode::{Decoder, Event};
use medgw_protocols::sim::masimo::MasimoSim;
use medgw_protocols::sim::{DeviceSimulator, SimOptions};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::masimo::decoder::MasimoDecoder;

const CHUNK: usize = 256;
const T0: Timestamp = Timestamp(1_710_498_125_000);

fn bench(c: &mut Criterion) {
    let mut sim = MasimoSim::new(&SimOptions { seed: 1, period_ms: 1, record: false }, T0);
    let mut data = Vec::with_capacity(4 << 20);
    let mut t = T0.0;
    while data.len() < 4 << 20 {
        t += 100;
        sim.tick(Timestamp(t), &mut data);
    }
    let mut g = c.benchmark_group("masimo");
    g.throughput(Throughput::Bytes(data.len() as u64));
    let mut out: Vec<Event> = Vec::with_capacity(64);
    g.bench_function("masimo", |b| {
        b.iter(|| {
            let mut d = MasimoDecoder::new();
            let mut n = 0;
            for chunk in data.chunks(CHUNK) {
                out.clear();
                d.feed(chunk, T0, &mut out);
                n += out.len();
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
