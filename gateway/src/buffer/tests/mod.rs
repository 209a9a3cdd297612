//! Tests of the durable buffer: the store, the async handle, corruption, crashes and power cuts.

use std::path::Path;
use std::sync::Arc;

use medgw_protocols::decimal::Decimal;
use medgw_protocols::mdc::{code, unit};
use medgw_protocols::observation::{DeviceContext, DeviceIdentity, Flags, Location, Measurement, Observation, Patient};
use medgw_protocols::Timestamp;

use crate::config::{BufferConfig, Replay, WhenFull};

mod cli;
mod corruption;
mod crash;
mod disk;
mod handle;
mod sinks;
mod store;
mod waves;

/// 2024-03-15T10:22:05Z, the receipt time of the first fixture observation.
const T0: i64 = 1_710_498_125_000;

fn context(bed: usize) -> Arc<DeviceContext> {
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
        location: Location { site: "HOSP".into(), unit: "ICU".into(), room: Some(format!("R{}", bed / 2)), bed: format!("BED{bed}") },
        patient: Some(Patient::configured(format!("P{bed:06}"), Some("urn:oid:1.2.3.4".into()))),
        gateway_eui64: None,
    })
}

/// The `i`-th reading of a bed: HR, SpO2, pulse rate, respiration rate in turn, four per second,
/// slowly changing values with one decimal where the device gives one.
fn observation(ctx: &Arc<DeviceContext>, i: u64) -> Observation {
    let (metric, u, m, e) = match i % 4 {
        0 => (code::MDC_ECG_HEART_RATE, unit::MDC_DIM_BEAT_PER_MIN, 60 + (i / 4 % 40) as i64, 0),
        1 => (code::MDC_PULS_OXIM_SAT_O2, unit::MDC_DIM_PERCENT, 900 + (i / 4 % 100) as i64, -1),
        2 => (code::MDC_PULS_OXIM_PULS_RATE, unit::MDC_DIM_BEAT_PER_MIN, 61 + (i / 4 % 40) as i64, 0),
        _ => (code::MDC_RESP_RATE, unit::MDC_DIM_RESP_PER_MIN, 12 + (i / 4 % 10) as i64, 0),
    };
    let value = Decimal::new(m, e).unwrap_or(Decimal::from_int(0));
    let rx = Timestamp(T0 + (i as i64) * 250);
    Observation::new(
        ctx.clone(),
        Measurement::numeric(metric, value, u).with_seq(Some(i as u32)),
        rx,
        Some(Timestamp(rx.0 - 40)),
        Flags::NONE,
    )
}

/// `n` observations spread over `beds` devices, starting at reading `from`.
fn observations(beds: &[Arc<DeviceContext>], from: u64, n: u64) -> Vec<Observation> {
    (from..from + n).map(|i| observation(&beds[(i as usize) % beds.len()], i)).collect()
}

fn beds(n: usize) -> Vec<Arc<DeviceContext>> {
    (1..=n).map(context).collect()
}

fn config(dir: &Path, max_bytes: u64, when_full: WhenFull) -> BufferConfig {
    BufferConfig { path: dir.join("buffer.db"), max_bytes, when_full, commit_interval_ms: 5, replay: Replay::LiveFirst }
}
