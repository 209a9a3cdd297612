//! A Bluetooth LE source: standard health devices (heart rate, pulse oximeter, blood pressure,
//! thermometer, weight scale, glucose meter) read through their GATT services.
//!
//! One task per device, like serial.rs: it connects (finding the device by address or name),
//! runs the [`gatt_client`] (Device Information → Current Time → subscribe → fetch stored
//! records), feeds every characteristic value whole to that characteristic's decoder in the
//! shared [`DeviceRunner`] — so normalisation, the durable commit, live hand-over, events and
//! metrics are those of serial devices — and reconnects with back-off when the link drops.
//!
//! The radio is behind [`transport::BleTransport`]: [`bluez`] talks to BlueZ over D-Bus
//! (cargo feature `ble`), `scripted` (tests only) replays GATT values. Without an adapter (or
//! D-Bus, or bluetoothd) the device is reported `disconnected` with what is missing, and
//! retried; other devices are not affected.

#[cfg(feature = "ble")]
pub mod bluez;
pub mod cursor_file;
pub mod gatt_client;
#[cfg(test)]
pub mod scripted;
pub mod transport;

use std::path::PathBuf;
use std::time::Duration;

use medgw_protocols::decode::{Decoder, Event as DecodeEvent};
use medgw_protocols::observation::Flags;
use medgw_protocols::wire::gatt::{GattDecoder, GattKind};
use medgw_protocols::Timestamp;
use tokio::time::Instant;

use self::gatt_client::{GattClient, Step};
use self::transport::{Advertisement, BleError, BleLink, BleTransport, GattValue, Target};
use super::backoff::Backoff;
use super::liveness::{Failures, Liveness, Now};
use super::{DeviceRunner, DeviceState, SourceError, Stop};
use crate::events::EventKind;

/// How long to look for a device before a connection attempt fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Values committed as one batch at most (what arrived while the last batch was committed).
const MAX_BATCH: usize = 64;

/// One decoder per GATT kind, in [`GattKind::ALL`] order (the runner's decoder index).
pub fn decoders() -> Vec<Box<dyn Decoder>> {
    GattKind::ALL.into_iter().map(|k| Box::new(GattDecoder::new(k)) as Box<dyn Decoder>).collect()
}

fn decoder_index(kind: GattKind) -> usize {
    GattKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// What a configured BLE device needs besides its runner.
#[derive(Debug, Clone)]
pub struct BleParams {
    pub target: Target,
    /// Configured services (empty: every supported service the device offers).
    pub services: Vec<GattKind>,
    /// Where the stored-records cursor is kept.
    pub cursor_path: PathBuf,
    pub connect_timeout: Duration,
    /// Back-off between connection attempts: first and longest delay.
    pub backoff: (Duration, Duration),
    /// The zone of the device's clock, for Current Time ([`crate::config::Config::device_zone`]).
    pub timezone: jiff::tz::TimeZone,
}

impl BleParams {
    pub fn new(
        address: Option<&str>,
        name: Option<&str>,
        services: &[GattKind],
        timezone: jiff::tz::TimeZone,
        cursor_path: PathBuf,
    ) -> BleParams {
        let target = match (address, name) {
            (Some(a), _) => Target::Address(a.to_ascii_uppercase()),
            (None, n) => Target::Name(n.unwrap_or_default().to_string()),
        };
        BleParams {
            target,
            services: services.to_vec(),
            cursor_path,
            connect_timeout: CONNECT_TIMEOUT,
            backoff: (Duration::from_secs(1), Duration::from_secs(60)),
            timezone,
        }
    }
}

/// The transport this build has: BlueZ with the `ble` feature, otherwise one that says
/// Bluetooth is not built in.
#[cfg(feature = "ble")]
pub fn system_transport() -> bluez::Bluez {
    bluez::Bluez::default()
}

#[cfg(not(feature = "ble"))]
pub fn system_transport() -> transport::Unavailable {
    transport::Unavailable
}

/// `medgw ble scan`: the devices advertising for `duration`, strongest first.
pub async fn scan(duration: Duration) -> Result<Vec<Advertisement>, BleError> {
    let mut t = system_transport();
    let mut found = t.scan(duration).await?;
    found.sort_by_key(|a| std::cmp::Reverse(a.rssi.unwrap_or(i16::MIN)));
    Ok(found)
}

/// Prints a scan as the installer reads it.
pub fn print_scan(found: &[Advertisement], out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "{:<17}  {:>5}  {:<24}  health services", "address", "rssi", "name")?;
    for a in found {
        let services: Vec<String> = a
            .services
            .iter()
            .filter_map(|s| gatt_client::HEALTH_SERVICES.iter().find(|(u, _)| u == s).map(|(u, n)| format!("{n} (0x{u:04X})")))
            .collect();
        writeln!(
            out,
            "{:<17}  {:>5}  {:<24}  {}",
            a.address,
            a.rssi.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            a.name.as_deref().unwrap_or("-"),
            if services.is_empty() { "-".to_string() } else { services.join(", ") }
        )?;
    }
    writeln!(out, "{} devices", found.len())
}

/// Why a connection ended.
enum End {
    Shutdown,
    Lost(SourceError),
}

/// Runs the device until shutdown.
pub async fn run<T: BleTransport>(mut runner: DeviceRunner, mut transport: T, params: BleParams) {
    let shutdown = runner.shutdown_token();
    let seed = runner.cfg.name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    // A device that stays away for one reason is one event, not one per retry.
    let mut liveness = Liveness::new(Backoff::new(params.backoff.0, params.backoff.1, seed), Failures::WhenChanged);
    let mut client = GattClient::new(&params.services, cursor_file::load(&params.cursor_path));
    runner.publish_device();
    while !shutdown.is_cancelled() {
        let attempt = tokio::select! {
            r = transport.connect(&params.target, params.connect_timeout) => r,
            _ = shutdown.cancelled() => break,
        };
        let link = match attempt {
            Ok(link) => link,
            Err(e) => {
                let detail = SourceError::ble_connect(&params.target, e).to_string();
                runner.status.set_state(DeviceState::Disconnected);
                if liveness.connect_failed(&detail, Now::read()) {
                    runner.event(runner.device_event(EventKind::Disconnected, detail));
                }
                tokio::select! {
                    _ = tokio::time::sleep(liveness.retry_delay()) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        match connected(&mut runner, &mut client, link, &params, &mut liveness).await {
            End::Shutdown => break,
            End::Lost(e) => {
                let detail = e.to_string();
                client.disconnected();
                persist(&client, &params);
                runner.status.set_state(DeviceState::Disconnected);
                runner.status.reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                liveness.lost(&detail, Now::read());
                runner.event(runner.device_event(EventKind::Disconnected, detail));
                tokio::select! {
                    _ = tokio::time::sleep(liveness.retry_delay()) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    persist(&client, &params);
    // An `end` for every alarm still active: the gateway stops watching the device.
    runner.alarms_shutdown();
    runner.end_waves();
    runner.flush_rejections();
    runner.flush_repeated(true);
    runner.status.set_state(DeviceState::Disconnected);
}

fn persist(client: &GattClient, params: &BleParams) {
    if let Err(e) = cursor_file::store(&params.cursor_path, client.cursor()) {
        tracing::error!(path = %params.cursor_path.display(), error = %e, "cannot save the Bluetooth record cursor");
    }
}

/// Whether the device streams values (its silence means something): heart rate and PLX
/// continuous do; cuffs, thermometers, scales and meters speak when a measurement is taken.
fn streams(client: &GattClient) -> bool {
    client.used().iter().any(|(k, _)| matches!(k, GattKind::HeartRate | GattKind::PlxContinuous))
}

/// One connection, from discovery to its end.
async fn connected<L: BleLink>(
    runner: &mut DeviceRunner,
    client: &mut GattClient,
    mut link: L,
    params: &BleParams,
    liveness: &mut Liveness,
) -> End {
    let shutdown = runner.shutdown_token();
    let address = link.address();
    let plan = match client.plan(&link.characteristics()) {
        Ok(p) => p,
        Err(e) => {
            link.disconnect().await;
            return End::Lost(SourceError::BleServices { address, source: e });
        }
    };
    let used: Vec<&str> = plan.used.iter().map(|(k, _)| gatt_client::config_name(*k)).collect();
    runner.status.set_state(DeviceState::Connected);
    if liveness.opened() {
        runner.event(runner.device_event(EventKind::Connected, format!("connected to {address}: {}", used.join(", "))));
    }
    if !plan.missing.is_empty() {
        let missing: Vec<&str> = plan.missing.iter().map(|k| gatt_client::config_name(*k)).collect();
        runner.event(runner.device_event(EventKind::Session, format!("the device does not offer {}", missing.join(", "))));
    }
    // 1. Device Information.
    for id in &plan.reads {
        match link.read(*id).await {
            Ok(v) => {
                if let Err(e) = client.device_information(*id, &v) {
                    if let Some(suppressed) = runner.log_allowed(true, format!("malformed Device Information {id}")) {
                        let suppressed = (suppressed > 0).then_some(suppressed);
                        tracing::warn!(device = %runner.cfg.name, characteristic = %id, error = %e, suppressed, "malformed Device Information value");
                    }
                }
            }
            Err(e @ BleError::Disconnected(_)) => return End::Lost(e.into()),
            Err(e) => tracing::debug!(device = %runner.cfg.name, characteristic = %id, error = %e, "Device Information not readable"),
        }
    }
    if let Some(id) = client.identity().cloned() {
        if let Err(Stop::Shutdown) = runner.report(DecodeEvent::Identity(id), Timestamp::now()).await {
            return End::Shutdown;
        }
    }
    let steps = client.bind_device(&address);
    if let Some(end) = execute(runner, client, &mut link, steps, params).await {
        return end;
    }
    // 2. Current Time, in the device's zone.
    if let Some(id) = plan.current_time {
        let local = local_time(&params.timezone, Timestamp::now());
        match link.write(id, &GattClient::current_time(local)).await {
            Ok(()) => tracing::info!(device = %runner.cfg.name, "device clock set (Current Time)"),
            Err(e @ BleError::Disconnected(_)) => return End::Lost(e.into()),
            Err(e) => {
                if let Some(suppressed) = runner.log_allowed(true, "Current Time write refused".into()) {
                    let suppressed = (suppressed > 0).then_some(suppressed);
                    tracing::warn!(device = %runner.cfg.name, error = %e, suppressed, "Current Time write refused");
                }
            }
        }
    }
    // 3. Subscriptions.
    for id in &plan.subscribe {
        if let Err(e) = link.subscribe(*id).await {
            link.disconnect().await;
            return End::Lost(SourceError::BleSubscribe { id: *id, source: e });
        }
    }
    match runner.start(Timestamp::now()).await {
        Ok(_) => {}
        Err(Stop::Shutdown) => return End::Shutdown,
    }
    // 4. Stored records.
    let steps = client.start_transfers(Timestamp::now());
    if let Some(end) = execute(runner, client, &mut link, steps, params).await {
        return end;
    }
    let silence = streams(client).then(|| Duration::from_millis(runner.cfg.silence_timeout_ms as u64));
    liveness.watch(silence, Now::read());
    loop {
        let wake = client.next_wakeup().map(|t| Instant::now() + Duration::from_millis((t.0 - Timestamp::now().0).max(0) as u64));
        let due = liveness.next_wakeup().map(Instant::from_std);
        tokio::select! {
            r = link.next_value() => {
                let first = match r {
                    Ok(v) => v,
                    Err(e) => return End::Lost(e.into()),
                };
                let now = Now::read();
                if let Some(since) = liveness.data(now) {
                    runner.event(runner.device_event(EventKind::Resumed, "data flows again").with_span(since, now.wall));
                }
                runner.status.set_state(DeviceState::Connected);
                let mut values = vec![first];
                while values.len() < MAX_BATCH {
                    match link.try_next_value() {
                        Some(v) => values.push(v),
                        None => break,
                    }
                }
                if let Some(end) = handle_values(runner, client, &mut link, values, params, now.wall).await {
                    return end;
                }
            }
            _ = sleep_opt(wake) => {
                let steps = client.poll(Timestamp::now());
                if let Some(end) = execute(runner, client, &mut link, steps, params).await {
                    return end;
                }
            }
            _ = sleep_opt(due) => {
                let now = Now::read();
                let due = liveness.poll(now);
                if due.rejections {
                    runner.flush_rejections();
                }
                if let Some(s) = due.silence {
                    // Bluetooth keeps the link: a streaming device may be between readings.
                    runner.status.set_state(DeviceState::Silent);
                    if s.announce {
                        let secs = silence.unwrap_or_default().as_secs();
                        runner.event(
                            runner.device_event(EventKind::Silent, format!("connected but no values for {secs} s")).with_span(s.since, now.wall),
                        );
                    }
                }
            }
            _ = shutdown.cancelled() => {
                link.disconnect().await;
                return End::Shutdown;
            }
        }
    }
}

async fn sleep_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The device's wall-clock time at `now` in its zone (for Current Time): the same zone the
/// normaliser reads the device's time stamps with.
pub fn local_time(zone: &jiff::tz::TimeZone, now: Timestamp) -> Timestamp {
    let offset = jiff::Timestamp::from_millisecond(now.0).map(|t| zone.to_offset(t).seconds() as i64 * 1000).unwrap_or(0);
    Timestamp(now.0 + offset)
}

/// The GATT client's steps for a batch of values, then one commit, then the writes.
async fn handle_values<L: BleLink>(
    runner: &mut DeviceRunner,
    client: &mut GattClient,
    link: &mut L,
    values: Vec<GattValue>,
    params: &BleParams,
    now: Timestamp,
) -> Option<End> {
    let mut steps = Vec::new();
    for v in &values {
        steps.extend(client.on_value(v.id, &v.value, now));
    }
    execute(runner, client, link, steps, params).await
}

/// Carries out steps: decodes are committed first (one batch), so that the cursor advances
/// and the next RACP request goes out only after the records are durable.
async fn execute<L: BleLink>(
    runner: &mut DeviceRunner,
    client: &mut GattClient,
    link: &mut L,
    steps: Vec<Step>,
    params: &BleParams,
) -> Option<End> {
    if steps.is_empty() {
        return None;
    }
    let now = Timestamp::now();
    let mut batch: Vec<(usize, Vec<u8>, Flags)> = Vec::new();
    let mut taken = Vec::new();
    let mut writes = Vec::new();
    let mut save = false;
    for step in steps {
        match step {
            Step::Decode { kind, value, flags, taken: t } => {
                batch.push((decoder_index(kind), value, flags));
                taken.push(t);
            }
            Step::Write { id, value } => writes.push((id, value)),
            Step::Event(detail) => runner.event(runner.device_event(EventKind::Session, detail)),
            Step::Persist => save = true,
        }
    }
    if !batch.is_empty() {
        let refs: Vec<(usize, &[u8], Flags)> = batch.iter().map(|(i, v, f)| (*i, v.as_slice(), *f)).collect();
        if let Err(Stop::Shutdown) = runner.feed_values(&refs, now).await {
            return Some(End::Shutdown);
        }
        // Committed: the cursor may move past these records.
        save |= client.committed(&taken);
    }
    if save {
        persist(client, params);
    }
    for (id, value) in writes {
        if let Err(e) = link.write(id, &value).await {
            return Some(End::Lost(SourceError::BleWrite { id, source: e }));
        }
    }
    None
}

#[cfg(test)]
mod tests;
