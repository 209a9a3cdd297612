//! MEDIBUS decode throughput: the simulated device's answers to measured-data requests (11
//! records, ~75 bytes each) fed in 256-byte chunks, to a listen-only decoder and to a polling
//! session. Target: at least 50 MB/s on one core (framed ASCII, like a line protocol).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::sim::medibus::MedibusSim;
use medgw_protocols::sim::{DeviceSimulator, SimOptions};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::medibus::decoder::MedibusDecoder;

const CHUNK: usize = 256;
const T0: Timestamp = Timestamp(1_710_498_125_000);
/// DP-3 (ICC) and DP-1 (request measured data CP1).
const ICC: &[u8] = &[0x1B, 0x51, 0x36, 0x43, 0x0D];
const DP1: &[u8] = &[0x1B, 0x24, 0x33, 0x46, 0x0D];

fn bench(c: &mut Criterion) {
    let mut sim = MedibusSim::new(&SimOptions { seed: 1, period_ms: 1000, record: false }, T0);
    let mut data = Vec::with_capacity(4 << 20);
    sim.receive(ICC, T0, &mut data);
    while data.len() < 4 << 20 {
        sim.receive(DP1, T0, &mut data);
    }
    let mut g = c.benchmark_group("medibus");
    g.throughput(Throughput::Bytes(data.len() as u64));
    let mut out: Vec<Event> = Vec::with_capacity(64);
    for (name, listen_only) in [("listen-only", true), ("session", false)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = MedibusDecoder::new(&DecoderOptions { poll_period_ms: 1000, listen_only, ..Default::default() });
                d.start(T0, &mut out);
                let mut n = 0;
                for chunk in data.chunks(CHUNK) {
                    out.clear();
                    d.feed(chunk, T0, &mut out);
                    n += out.len();
                }
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
