//! Decode throughput of IntelliVue poll-reply frames (what the monitor sends during a session):
//! a listen-only client decodes a stream recorded from the client/simulator exchange, fed in
//! 4 KiB chunks as a serial port read returns them.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::sim::intellivue::IntelliVueSim;
use medgw_protocols::sim::{DeviceSimulator, SimOptions};
use medgw_protocols::wire::intellivue::IntelliVueClient;
use medgw_protocols::Timestamp;

/// Runs an active client against the simulator, polling every 100 ms of simulated time, and
/// returns the monitor's bytes (about `polls` extended poll replies).
fn monitor_stream(polls: usize) -> Vec<u8> {
    let mut client = IntelliVueClient::new(&DecoderOptions { poll_period_ms: 100, listen_only: false, ..Default::default() });
    let mut now = Timestamp(1_710_498_125_000);
    let mut sim = IntelliVueSim::new(&SimOptions { seed: 3, period_ms: 1000, record: false }, now);
    let mut stream = Vec::new();
    let mut ev = Vec::new();
    client.start(now, &mut ev);
    for _ in 0..polls * 2 {
        let mut dev = Vec::new();
        // Deliver until quiet.
        loop {
            for e in ev.drain(..) {
                if let Event::Transmit(b) = e {
                    sim.receive(&b, now, &mut dev);
                }
            }
            if dev.is_empty() {
                break;
            }
            stream.extend_from_slice(&dev);
            client.feed(&dev, now, &mut ev);
            dev.clear();
        }
        now = client.next_wakeup().unwrap_or(Timestamp(now.0 + 100)).max(Timestamp(now.0 + 1));
        client.poll(now, &mut ev);
        sim.tick(now, &mut dev);
        client.feed(&dev, now, &mut ev);
        stream.extend_from_slice(&dev);
    }
    stream
}

fn decode(c: &mut Criterion) {
    let stream = monitor_stream(2000);
    let mut check = IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() });
    let mut out = Vec::new();
    check.feed(&stream, Timestamp(0), &mut out);
    let measurements = out.iter().filter(|e| matches!(e, Event::Measurement(_))).count();
    assert!(measurements > 10_000, "{measurements}");
    assert!(!out.iter().any(|e| matches!(e, Event::Rejected { .. })));
    eprintln!("intellivue bench stream: {} bytes, {} measurements", stream.len(), measurements);

    let mut g = c.benchmark_group("intellivue");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("decode poll replies (listen-only, 4 KiB chunks)", |b| {
        let mut out = Vec::with_capacity(measurements + 64);
        b.iter(|| {
            let mut d = IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() });
            out.clear();
            for chunk in stream.chunks(4096) {
                d.feed(black_box(chunk), Timestamp(0), &mut out);
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
