//! Decode throughput of `medgw-link`: a simulated node's stream (Hello, TimeRequest, batches of
//! SpO2 / pulse rate / temperature), fed to the gateway decoder in 64-byte chunks, the size a
//! USB-serial adapter typically delivers per read.
//!
//! `cargo bench -p medgw-protocols --features sim --bench link -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::sim::link::LinkNodeSim;
use medgw_protocols::sim::{DeviceSimulator, SimOptions};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::link::LinkDecoder;

const T0: i64 = 1_710_498_125_000;

/// About 4 MB of node output, with the decoder's acks and time answers passed back so that the
/// stream is the conversation's node side (no resend storms).
fn stream() -> Vec<u8> {
    let mut sim = LinkNodeSim::new(&SimOptions { seed: 42, period_ms: 1, record: false }, Timestamp(T0));
    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    let mut all = Vec::new();
    let mut t = T0;
    while all.len() < 4_000_000 {
        let mut bytes = Vec::new();
        sim.tick(Timestamp(t), &mut bytes);
        let mut ev = Vec::new();
        dec.feed(&bytes, Timestamp(t), &mut ev);
        all.extend_from_slice(&bytes);
        for e in ev {
            if let Event::Transmit(b) = e {
                let mut reply = Vec::new();
                sim.receive(&b, Timestamp(t), &mut reply);
                dec.feed(&reply, Timestamp(t), &mut Vec::new());
                all.extend_from_slice(&reply);
            }
        }
        t += 10;
    }
    all
}

fn bench(c: &mut Criterion) {
    let data = stream();
    let mut group = c.benchmark_group("medgw-link");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("decode 64-byte chunks", |b| {
        b.iter(|| {
            let mut dec = LinkDecoder::new(&DecoderOptions::default());
            let mut out = Vec::with_capacity(1024);
            let mut n = 0usize;
            for chunk in data.chunks(64) {
                dec.feed(chunk, Timestamp(T0), &mut out);
                n += out.len();
                out.clear();
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
