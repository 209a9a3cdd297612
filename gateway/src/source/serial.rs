//! A serial-port source (RS-232, USB serial adapters, pseudo-terminals).
//!
//! One task per device. The port is reopened with back-off when it vanishes (USB unplugged:
//! reads fail with EIO) and when the device is silent for its timeout (a wedged adapter or a
//! pulled cable often looks like silence), with a `disconnected`, `silent` or `resumed` event
//! carrying the time span of the gap.

use std::path::Path;
use std::time::Duration;

use medgw_protocols::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_serial::{DataBits, Parity as SerialParity, SerialPortBuilderExt, SerialStream, StopBits};

use super::backoff::Backoff;
use super::{DeviceRunner, DeviceState, Stop};
use crate::config::{Parity, SerialSettings};
use crate::events::EventKind;

/// How often rejected-frame counts are reported.
const REJECTION_REPORT: Duration = Duration::from_secs(5);

/// Opens a serial port in raw mode with the device's settings.
pub fn open(path: &Path, s: &SerialSettings) -> Result<SerialStream, tokio_serial::Error> {
    let data_bits = match s.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match s.parity {
        Parity::None => SerialParity::None,
        Parity::Even => SerialParity::Even,
        Parity::Odd => SerialParity::Odd,
    };
    let stop_bits = if s.stop_bits == 2 { StopBits::Two } else { StopBits::One };
    tokio_serial::new(path.to_string_lossy(), s.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .timeout(Duration::from_millis(100))
        .open_native_async()
}

async fn send(port: &mut SerialStream, frames: Vec<Vec<u8>>) -> std::io::Result<()> {
    for f in frames {
        port.write_all(&f).await?;
    }
    port.flush().await
}

/// Runs the device until shutdown.
pub async fn run(mut runner: DeviceRunner, path: std::path::PathBuf, settings: SerialSettings) {
    let shutdown = runner_shutdown(&runner);
    let seed = runner.cfg.name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30), seed);
    let silence = Duration::from_millis(runner.cfg.silence_timeout_ms as u64);
    // Start of the current outage (disconnected or silent), for the span of the next event.
    let mut outage_since: Option<Timestamp> = None;
    let mut announced_down = false;
    let mut announced_silent = false;
    let mut first_open = true;
    runner.publish_device();
    let mut buf = vec![0u8; 4096];
    'outer: while !shutdown.is_cancelled() {
        let mut port = match open(&path, &settings) {
            Ok(p) => p,
            Err(e) => {
                if !announced_down {
                    announced_down = true;
                    outage_since.get_or_insert_with(Timestamp::now);
                    runner.status.set_state(DeviceState::Disconnected);
                    runner.event(runner.device_event(EventKind::Disconnected, format!("cannot open {}: {e}", path.display())));
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        runner.status.set_state(DeviceState::Connected);
        if first_open || announced_down {
            // Reopening a silent port is not news; coming back from a disconnection is.
            runner.event(runner.device_event(EventKind::Connected, format!("{} opened at {} baud", path.display(), settings.baud)));
        }
        first_open = false;
        announced_down = false;
        let frames = match runner.start(Timestamp::now()).await {
            Ok(f) => f,
            Err(Stop::Shutdown) => break,
        };
        if let Err(e) = send(&mut port, frames).await {
            runner.event(runner.device_event(EventKind::Disconnected, format!("write failed: {e}")));
            continue;
        }
        let mut last_byte = Instant::now();
        let mut report = tokio::time::interval(REJECTION_REPORT);
        report.tick().await;
        loop {
            let wake = runner.next_wakeup().map(|t| Instant::now() + Duration::from_millis((t.0 - Timestamp::now().0).max(0) as u64));
            tokio::select! {
                r = port.read(&mut buf) => {
                    let now = Timestamp::now();
                    match r {
                        Ok(0) | Err(_) => {
                            let detail = match r { Err(e) => format!("read failed: {e}"), _ => "port closed".to_string() };
                            runner.status.set_state(DeviceState::Disconnected);
                            runner.status.reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            outage_since.get_or_insert(now);
                            announced_down = true;
                            runner.event(runner.device_event(EventKind::Disconnected, detail));
                            tokio::select! {
                                _ = tokio::time::sleep(backoff.next_delay()) => continue 'outer,
                                _ = shutdown.cancelled() => break 'outer,
                            }
                        }
                        Ok(n) => {
                            last_byte = Instant::now();
                            backoff.reset();
                            if let Some(since) = outage_since.take() {
                                announced_silent = false;
                                runner.event(runner.device_event(EventKind::Resumed, "data flows again").with_span(since, now));
                            }
                            runner.status.set_state(DeviceState::Connected);
                            match runner.feed(&buf[..n], now).await {
                                Ok(frames) => if let Err(e) = send(&mut port, frames).await {
                                    runner.event(runner.device_event(EventKind::Disconnected, format!("write failed: {e}")));
                                    continue 'outer;
                                },
                                Err(Stop::Shutdown) => break 'outer,
                            }
                        }
                    }
                }
                _ = sleep_until_opt(wake) => {
                    match runner.poll(Timestamp::now()).await {
                        Ok(frames) => if let Err(e) = send(&mut port, frames).await {
                            runner.event(runner.device_event(EventKind::Disconnected, format!("write failed: {e}")));
                            continue 'outer;
                        },
                        Err(Stop::Shutdown) => break 'outer,
                    }
                }
                _ = tokio::time::sleep_until(last_byte + silence) => {
                    let now = Timestamp::now();
                    let since = *outage_since.get_or_insert(Timestamp(now.0 - silence.as_millis() as i64));
                    runner.status.set_state(DeviceState::Silent);
                    if !announced_silent {
                        announced_silent = true;
                        runner.event(runner.device_event(EventKind::Silent, format!("no data for {} s: reopening the port", silence.as_secs())).with_span(since, now));
                    }
                    // Reopen: a wedged USB adapter often recovers; a pulled cable stays silent.
                    drop(port);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => continue 'outer,
                        _ = shutdown.cancelled() => break 'outer,
                    }
                }
                _ = report.tick() => runner.flush_rejections(),
                _ = shutdown.cancelled() => break 'outer,
            }
        }
    }
    runner.flush_rejections();
    runner.status.set_state(DeviceState::Disconnected);
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn runner_shutdown(runner: &DeviceRunner) -> tokio_util::sync::CancellationToken {
    runner.shutdown_token()
}
