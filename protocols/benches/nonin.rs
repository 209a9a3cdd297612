//! Nonin decode throughput: a simulator stream (DF2, DF7, DF8) fed in 256-byte chunks, as a
//! USB-serial adapter delivers it. Target: at least 100 MB/s on one core (binary decoder).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medgw_protocols::decode::{Decoder, Event};
use medgw_protocols::sim::nonin::NoninSim;
use medgw_protocols::sim::{DeviceSimulator, SimOptions};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::nonin::decoder::NoninDecoder;
use medgw_protocols::wire::nonin::Format;

const CHUNK: usize = 256;
const T0: Timestamp = Timestamp(1_710_498_125_000);

/// About `bytes` of simulator output at a 1 ms "second" (75 frames per ms for DF2/DF7).
fn stream(name: &'static str, format: Option<Format>, bytes: usize) -> Vec<u8> {
    let mut sim = NoninSim::new(name, format, &SimOptions { seed: 1, period_ms: 1, record: false }, T0);
    let mut out = Vec::with_capacity(bytes + 4096);
    let mut t = T0.0;
    while out.len() < bytes {
        t += 10;
        sim.tick(Timestamp(t), &mut out);
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("nonin");
    for (name, format, make) in [
        ("nonin-df2", Some(Format::Df2), NoninDecoder::df2 as fn() -> NoninDecoder),
        ("nonin-df7", Some(Format::Df7), NoninDecoder::df7),
        // Fed at one time stamp, far faster than a device: the rate gate is opened wide so the
        // bench measures decoding (lock included), not rejection.
        ("nonin-df8", None, || NoninDecoder::df8_with_rate(u32::MAX)),
    ] {
        let data = stream(name, format, 4 << 20);
        g.throughput(Throughput::Bytes(data.len() as u64));
        let mut out: Vec<Event> = Vec::with_capacity(64);
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = make();
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
