//! `medgw demo`: the whole gateway on one machine with nothing installed.
//!
//! An embedded MQTT broker (rumqttd) on loopback, one simulator per bedside protocol on its own
//! pseudo-terminal, the gateway reading them through the real serial path into its real buffer
//! and sink, and a subscriber that prints what the hospital would receive.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use medgw_protocols::sim::SimOptions;
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use crate::config::*;
use crate::pipeline;
use crate::simulate::{self, SimRun};

/// The demo's devices: protocol, bed, device name. Protocols without a simulator in this build
/// are skipped.
const DEVICES: &[(&str, &str, &str)] = &[
    ("nonin-df8", "BED1", "bed1-oximeter"),
    ("masimo", "BED2", "bed2-oximeter"),
    ("intellivue", "BED3", "bed3-monitor"),
    ("medibus", "BED4", "bed4-ventilator"),
    ("medgw-link", "BED5", "bed5-node"),
    ("nonin-df2", "BED6", "bed6-oximeter"),
];

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts rumqttd on `127.0.0.1:port` in its own threads.
fn start_broker(port: u16) -> anyhow::Result<()> {
    let toml = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 10485760
max_segment_count = 10
[v4.1]
name = "v4-demo"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 65536
max_inflight_count = 200
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&toml)?;
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new().name("demo-broker".into()).spawn(move || {
        if let Err(e) = broker.start() {
            eprintln!("demo broker stopped: {e}");
        }
    })?;
    Ok(())
}

/// Where a demo device's simulator is: a pseudo-terminal (the serial path) or a simulated device
/// server in TCP-server mode on loopback.
#[derive(Debug, Clone)]
enum Attached {
    Pty(PathBuf),
    Tcp(std::net::SocketAddr),
}

impl std::fmt::Display for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attached::Pty(p) => write!(f, "{}", p.display()),
            Attached::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

fn demo_config(
    dir: &std::path::Path,
    port: u16,
    format: PayloadFormat,
    devices: &[(Attached, &str, &str, &str)],
    status_bind: std::net::SocketAddr,
) -> Config {
    Config {
        gateway: GatewayConfig {
            id: "demo-gw".into(),
            site: "DEMO".into(),
            unit: "ICU".into(),
            timezone: Some(jiff::tz::TimeZone::UTC),
            nomenclature: None,
            log_format: LogFormat::Human,
            eui64: None,
        },
        mqtt: MqttConfig {
            host: "127.0.0.1".into(),
            port,
            client_id: "medgw-demo".into(),
            keep_alive_s: 30,
            qos: 1,
            topic_prefix: "medgw/v1".into(),
            format,
            // rumqttd serves MQTT 3.1.1 on this listener.
            protocol: MqttProtocol::V311,
            tls: None,
            username: None,
            password: None,
            max_inflight: 100,
        },
        buffer: BufferConfig {
            path: dir.join("buffer.db"),
            max_bytes: 64 << 20,
            when_full: WhenFull::DropOldest,
            commit_interval_ms: 5,
            replay: Replay::LiveFirst,
        },
        status: StatusConfig { bind: status_bind, ..StatusConfig::default() },
        devices: devices
            .iter()
            .filter_map(|(attached, protocol, bed, name)| {
                // `run` attaches only simulators of registered protocols.
                let info = medgw_protocols::registry::find(protocol)?;
                let settings = info.serial.unwrap_or_default();
                let source = match attached {
                    Attached::Pty(path) => SourceConfig::Serial { port: path.clone(), settings },
                    Attached::Tcp(addr) => SourceConfig::TcpClient { host: addr.ip().to_string(), port: addr.port() },
                };
                Some(DeviceConfig {
                    name: name.to_string(),
                    protocol: DeviceProtocol::Stream(info),
                    source,
                    bed: bed.to_string(),
                    room: None,
                    patient: None,
                    poll_period_ms: 1000,
                    listen_only: false,
                    timezone: None,
                    silence_timeout_ms: 10_000,
                    max_frame_rate: None,
                    waves: None,
                    wave_poll: Vec::new(),
                })
            })
            .collect(),
        adt: None,
        sinks: Vec::new(),
        waves: Default::default(),
        warnings: Vec::new(),
    }
}

/// One line of the live view from a published payload.
pub fn describe(topic: &str, payload: &[u8]) -> Option<String> {
    let levels: Vec<&str> = topic.split('/').collect();
    let (bed, device, kind) = match levels.as_slice() {
        [.., bed, device, kind] => (*bed, *device, *kind),
        _ => return None,
    };
    let v: Json = serde_json::from_slice(payload).ok()?;
    let time = chrono_like(v.get("effectiveDateTime").or(v.get("effective_time")).or(v.get("time")).and_then(Json::as_str).unwrap_or(""));
    match kind {
        "obs" => {
            let vendor =
                format!("{} {} (unmapped)", v["vendor"]["namespace"].as_str().unwrap_or("?"), v["vendor"]["code"].as_str().unwrap_or("?"));
            let name = v["code"]["text"].as_str().or(v["display"].as_str()).or(v["metric"].as_str()).unwrap_or(&vendor);
            let value = if let Some(q) = v.get("valueQuantity") {
                format!("{} {}", q["value"], q["unit"].as_str().filter(|u| *u != "1").unwrap_or(""))
            } else if let Some(c) = v.get("component").and_then(Json::as_array) {
                let parts: Vec<String> = c.iter().map(|c| c["valueQuantity"]["value"].to_string()).collect();
                format!("{} {}", parts.join("/"), c.first().and_then(|c| c["valueQuantity"]["unit"].as_str()).unwrap_or(""))
            } else if let Some(r) = v.get("dataAbsentReason") {
                format!("(no value: {})", r["coding"][0]["code"].as_str().unwrap_or("?"))
            } else if let Some(c) = v.get("components").and_then(Json::as_array) {
                let parts: Vec<String> = c.iter().map(|c| c["value"].to_string()).collect();
                format!("{} {}", parts.join("/"), v["unit"].as_str().unwrap_or(""))
            } else if !v["value"].is_null() {
                format!("{} {}", v["value"], v["unit"].as_str().filter(|u| *u != "1").unwrap_or(""))
            } else {
                "(no value)".into()
            };
            Some(format!("{time:<9} {bed:<6} {device:<16} {name:<32} {value}"))
        }
        // Canonical alarm JSON or a FHIR Communication (PCD-04 is not JSON: not shown).
        "alarm" => {
            let phase = v["phase"].as_str().or(v["status"].as_str()).unwrap_or("?");
            let text = v["text"].as_str().or(v["payload"][0]["contentString"].as_str()).unwrap_or("?");
            let time = chrono_like(v["time"].as_str().or(v["sent"].as_str()).unwrap_or(""));
            Some(format!("{time:<9} {bed:<6} {device:<16} ALARM {phase}: {text}"))
        }
        "events" => Some(format!(
            "{time:<9} {bed:<6} {device:<16} event: {} {}",
            v["kind"].as_str().unwrap_or("?"),
            v["detail"].as_str().unwrap_or("")
        )),
        _ => None,
    }
}

fn chrono_like(rfc3339: &str) -> String {
    rfc3339.get(11..19).unwrap_or("").to_string()
}

/// How the demo's simulated devices reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoTransport {
    /// Pseudo-terminals: the serial path, as a device on a USB serial adapter.
    Pty,
    /// Device servers in TCP-server mode on loopback: the network path. Also for emulators
    /// without serial-port ioctls (qemu-user lacks the termios2 calls of the serial driver).
    Tcp,
}

pub async fn run(
    duration: Option<Duration>,
    format: PayloadFormat,
    status_port: Option<u16>,
    transport: DemoTransport,
    faults: Vec<simulate::ScheduledFault>,
) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("medgw-demo-").tempdir()?;
    let port = free_port()?;
    start_broker(port)?;
    println!("medgw demo: embedded MQTT broker on 127.0.0.1:{port}, work files in {}", dir.path().display());
    let stop = CancellationToken::new();
    let mut devices = Vec::new();
    for (protocol, bed, name) in DEVICES {
        if medgw_protocols::sim::find(protocol).is_none() || medgw_protocols::registry::find(protocol).is_none() {
            continue;
        }
        let link = dir.path().join(format!("tty-{name}"));
        let run = SimRun {
            protocol: protocol.to_string(),
            options: SimOptions { seed: devices.len() as u64 + 1, period_ms: 1000, record: false },
            faults: faults.clone(),
            link: (transport == DemoTransport::Pty).then_some(link),
            duration: None,
            write_every: Duration::ZERO,
            session_timeout: None,
            patient_id: None,
        };
        let stop = stop.clone();
        let attached = match transport {
            DemoTransport::Pty => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    if let Err(e) = simulate::run_pty(run, stop, tx, |_| {}).await {
                        eprintln!("simulator: {e}");
                    }
                });
                Attached::Pty(rx.await?)
            }
            DemoTransport::Tcp => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                tokio::spawn(async move {
                    if let Err(e) = crate::simulate_tcp::run_tcp_server(run, any, stop, tx, |_| {}).await {
                        eprintln!("simulator: {e}");
                    }
                });
                Attached::Tcp(rx.await?.parse()?)
            }
        };
        println!("  simulated {protocol:<12} on {attached} ({bed}, {name})");
        devices.push((attached, *protocol, *bed, *name));
    }
    if devices.is_empty() {
        anyhow::bail!("this build has no device simulators");
    }
    // The viewer subscribes before the gateway starts, so it sees the first values.
    let mut opts = rumqttc::MqttOptions::new("medgw-demo-viewer", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 100);
    client.subscribe("medgw/v1/#", rumqttc::QoS::AtLeastOnce).await?;
    // The status page on a free loopback port (8080 may be taken on a shared machine).
    let status_bind = std::net::SocketAddr::from(([127, 0, 0, 1], status_port.unwrap_or(0)));
    let config = demo_config(dir.path(), port, format, &devices, status_bind);
    let shutdown = CancellationToken::new();
    let (running, done) = pipeline::start(config, shutdown.clone()).await?;
    if let Some(addr) = running.status_addr {
        println!("status page: http://{addr}/");
    }
    println!("gateway demo-gw publishing {} to medgw/v1/demo-gw/... (Ctrl-C to stop)\n", format.as_str());
    println!("{:<9} {:<6} {:<16} {:<32} value", "time", "bed", "device", "metric");
    let deadline = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut shown = 0u64;
    loop {
        tokio::select! {
            e = events.poll() => match e {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if let Some(line) = describe(&p.topic, &p.payload) {
                        shown += 1;
                        println!("{line}");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("viewer: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = &mut deadline => break,
            _ = pipeline::signal() => break,
        }
    }
    shutdown.cancel();
    done.await;
    stop.cancel();
    println!("\nmedgw demo: {shown} messages shown; stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn alarm_lines_in_the_live_view() {
        let canonical = br#"{"phase":"start","text":"SpO2 low","time":"2026-01-02T10:22:05.120Z"}"#;
        assert_eq!(
            describe("medgw/v1/demo-gw/BED1/pulse-oximeter/alarm", canonical).as_deref(),
            Some("10:22:05  BED1   pulse-oximeter   ALARM start: SpO2 low")
        );
        let fhir = br#"{"resourceType":"Communication","status":"completed","sent":"2026-01-02T10:22:09Z","payload":[{"contentString":"SpO2 low"}]}"#;
        assert!(describe("medgw/v1/demo-gw/BED1/pulse-oximeter/alarm", fhir).unwrap().ends_with("ALARM completed: SpO2 low"));
        assert_eq!(describe("medgw/v1/demo-gw/BED1/pulse-oximeter/alarm", b"MSH|^~\\&|"), None);
    }
}
