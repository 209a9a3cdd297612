//! The durable buffer: ingest rate with durability on (WAL, synchronous=FULL, one fsync per
//! group commit), bytes per observation on disk, and how long a 1 GB buffer holds a 32-bed unit.
//!
//! `cargo bench -p medgw --bench buffer -- --warm-up-time 1 --measurement-time 3`
//!
//! The store lives in the system temp directory, which must be a real disk (not tmpfs, where
//! fsync costs nothing) for the figures to mean anything.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput};
use medgw::buffer::{BufferHandle, SqliteStore};
use medgw::config::{BufferConfig, Replay, WhenFull};
use medgw_protocols::decimal::Decimal;
use medgw_protocols::mdc::{code, unit};
use medgw_protocols::observation::{DeviceContext, DeviceIdentity, Flags, Location, Measurement, Observation, Patient};
use medgw_protocols::Timestamp;

/// A multiparameter monitor sending four numerics per second (HR, SpO2, pulse rate, RR) is the
/// rate the brief asks to assume; 20/s is a richer monitor (IntelliVue with ST, NIBP, temps).
const BEDS: usize = 32;
const RATES: [u64; 2] = [4, 20];

fn beds() -> Vec<Arc<DeviceContext>> {
    (1..=BEDS)
        .map(|bed| {
            Arc::new(DeviceContext {
                gateway: "gw-icu-1".into(),
                name: format!("bed{bed}-monitor"),
                protocol: "intellivue".into(),
                port: format!("/dev/ttyUSB{bed}"),
                identity: DeviceIdentity {
                    manufacturer: Some("Philips".into()),
                    model: Some("MX450".into()),
                    serial: Some(format!("DE{bed:08}")),
                    ..Default::default()
                },
                location: Location {
                    site: "HOSP".into(),
                    unit: "ICU".into(),
                    room: Some(format!("R{}", bed / 2)),
                    bed: format!("BED{bed}"),
                },
                patient: Some(Patient::configured(format!("P{bed:06}"), Some("urn:oid:1.2.3.4".into()))),
                gateway_eui64: None,
            })
        })
        .collect()
}

/// Observation `i` of the unit: the beds in turn, each sending HR, SpO2, PR and RR with device
/// times and sequence numbers, values drifting slowly.
fn observation(beds: &[Arc<DeviceContext>], i: u64) -> Observation {
    let bed = &beds[i as usize % beds.len()];
    let k = i / beds.len() as u64;
    let (metric, u, m, e) = match k % 4 {
        0 => (code::MDC_ECG_HEART_RATE, unit::MDC_DIM_BEAT_PER_MIN, 60 + (k / 4 % 40) as i64, 0),
        1 => (code::MDC_PULS_OXIM_SAT_O2, unit::MDC_DIM_PERCENT, 900 + (k / 4 % 100) as i64, -1),
        2 => (code::MDC_PULS_OXIM_PULS_RATE, unit::MDC_DIM_BEAT_PER_MIN, 61 + (k / 4 % 40) as i64, 0),
        _ => (code::MDC_RESP_RATE, unit::MDC_DIM_RESP_PER_MIN, 12 + (k / 4 % 10) as i64, 0),
    };
    let rx = Timestamp(1_710_498_125_000 + (i as i64) * 1000 / (BEDS as i64 * 4));
    let value = Decimal::new(m, e).unwrap_or(Decimal::from_int(0));
    Observation::new(
        bed.clone(),
        Measurement::numeric(metric, value, u).with_seq(Some(k as u32)),
        rx,
        Some(Timestamp(rx.0 - 40)),
        Flags::NONE,
    )
}

fn config(dir: &std::path::Path, max_bytes: u64) -> BufferConfig {
    BufferConfig {
        path: dir.join("buffer.db"),
        max_bytes,
        when_full: WhenFull::DropOldest,
        commit_interval_ms: 5,
        replay: Replay::LiveFirst,
    }
}

/// Bytes per observation on disk and what that means for a 1 GB buffer.
fn size_report() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = SqliteStore::open(&config(dir.path(), 1 << 30)).unwrap();
    store.checkpoint().unwrap();
    let db = |s: &SqliteStore| std::fs::metadata(s.path()).map(|m| m.len()).unwrap_or(0);
    let empty = db(&store);
    let beds = beds();
    let n = 256_000u64;
    for chunk in 0..n / 1000 {
        let batch: Vec<Observation> = (chunk * 1000..(chunk + 1) * 1000).map(|i| observation(&beds, i)).collect();
        store.append(&batch).unwrap();
    }
    store.checkpoint().unwrap();
    let size = db(&store);
    let per = (size - empty) as f64 / n as f64;
    // Start-up cost: the integrity check runs on every open.
    drop(store);
    let t = std::time::Instant::now();
    let (store, _) = SqliteStore::open(&config(dir.path(), 1 << 30)).unwrap();
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("buffer.db")).unwrap();
    let t = std::time::Instant::now();
    let _: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).unwrap();
    let quick_ms = t.elapsed().as_secs_f64() * 1e3;
    let mb = size as f64 / 1e6;
    println!(
        "open of a {mb:.1} MB buffer (integrity_check): {open_ms:.0} ms; quick_check alone: {quick_ms:.0} ms, i.e. about {:.1} s for 1 GB",
        quick_ms / mb * 1000.0 / 1e3
    );
    let reading = postcard_len(&observation(&beds, 1));
    println!("bytes per observation on disk: {per:.1} (postcard reading {reading} B; {n} observations, {BEDS} beds, after checkpoint)");
    // The 1 GiB configuration gives entries max_bytes - 2 x 16 MiB (WAL share and disk reserve).
    let usable = (1u64 << 30) - (32 << 20);
    let held = usable as f64 / per;
    for rate in RATES {
        let secs = held / (BEDS as f64 * rate as f64);
        println!(
            "1 GiB buffer (max_bytes = 1 GiB, {} MiB for entries) holds {:.1} M observations = {:.1} days of {BEDS} beds x {rate} numerics/s",
            usable >> 20,
            held / 1e6,
            secs / 86_400.0
        );
    }
}

fn postcard_len(o: &Observation) -> usize {
    postcard::to_allocvec(&o.reading).map_or(0, |v| v.len())
}

fn store_append(c: &mut Criterion) {
    let beds = beds();
    let mut g = c.benchmark_group("store_append");
    for batch in [100u64, 1000, 8192] {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = SqliteStore::open(&config(dir.path(), 4 << 30)).unwrap();
        let mut next = 0u64;
        g.throughput(Throughput::Elements(batch));
        g.bench_function(format!("batch_{batch}"), |b| {
            b.iter_batched(
                || {
                    let v: Vec<Observation> = (next..next + batch).map(|i| observation(&beds, i)).collect();
                    next += batch;
                    v
                },
                |v| black_box(store.append(&v).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Ingest and drain at once, as in steady state: append a group, read it back, acknowledge it.
fn store_cycle(c: &mut Criterion) {
    let beds = beds();
    let mut g = c.benchmark_group("store_cycle");
    let batch = 1000u64;
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = SqliteStore::open(&config(dir.path(), 1 << 30)).unwrap();
    let mut next = 0u64;
    let mut after = 0;
    g.throughput(Throughput::Elements(batch));
    g.bench_function("append_read_ack_1000", |b| {
        b.iter_batched(
            || {
                let v: Vec<Observation> = (next..next + batch).map(|i| observation(&beds, i)).collect();
                next += batch;
                v
            },
            |v| {
                store.append(&v).unwrap();
                let read = store.read_after(after, batch as usize).unwrap();
                after = read.last().map_or(after, |e| e.rowid);
                let ids: Vec<_> = read.iter().map(|e| e.rowid).collect();
                store.ack(&ids).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Through the async handle: many producers, group commit (5 ms window, 8192 at most).
fn handle_append(c: &mut Criterion) {
    let beds = Arc::new(beds());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut g = c.benchmark_group("handle_append");
    g.sample_size(20);
    for (producers, per) in [(64u64, 128u64), (32, 4)] {
        let dir = tempfile::tempdir().unwrap();
        let (buffer, _) = BufferHandle::open(&config(dir.path(), 4 << 30)).unwrap();
        let rounds = 10u64;
        g.throughput(Throughput::Elements(producers * per * rounds));
        g.bench_function(format!("{producers}_producers_x_{per}"), |b| {
            b.iter(|| {
                let buffer = buffer.clone();
                let beds = beds.clone();
                rt.block_on(async move {
                    let tasks: Vec<_> = (0..producers)
                        .map(|p| {
                            let (buffer, beds) = (buffer.clone(), beds.clone());
                            tokio::spawn(async move {
                                for r in 0..rounds {
                                    let from = (r * producers + p) * per;
                                    let v: Vec<Observation> = (from..from + per).map(|i| observation(&beds, i)).collect();
                                    buffer.append(v).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            })
        });
        println!("handle_append/{producers}_producers_x_{per}: {} group commits so far", buffer.commits());
        rt.block_on(buffer.close());
    }
    g.finish();
}

fn main() {
    size_report();
    let mut c = Criterion::default().configure_from_args();
    store_append(&mut c);
    store_cycle(&mut c);
    handle_append(&mut c);
    c.final_summary();
}
