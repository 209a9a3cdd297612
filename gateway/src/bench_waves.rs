//! `medgw bench --waves`: N beds, each with an ECG at 500 samples/s and a pleth at 125
//! samples/s, through the gateway's wave path — segmenter, segment encoder, the sink's wave
//! queue, the MQTT session — into a real Mosquitto, and a subscriber that measures what
//! arrives (issue 17's target: 32 beds under one core and 32 MiB RSS).
//!
//! No simulator makes an ECG yet (the IntelliVue wave poll is not written), so the measured
//! process is a child `medgw bench --waves-child` whose beds are tasks that hand the wave path
//! synthetic chunks as an IntelliVue wave poll would deliver them: every 256 ms, 128 ECG and 32
//! pleth samples. Decoding is therefore not in the figures; everything after it is. The child
//! runs the real sink (`sink::mqtt::run`) with its buffer, as `medgw run` does; this process
//! runs the broker and the subscriber and measures the child.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use medgw_protocols::decimal::Decimal;
use medgw_protocols::mdc::{code, unit};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::{DeviceContext, Flags};
use medgw_protocols::wave::{Continuity, SamplePeriod, WaveChunk, WaveScale};
use medgw_protocols::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bench::{cpu_seconds, peak_rss_kib, percentile, which, BenchOptions, Killed};
use crate::config::{MqttConfig, MqttProtocol, PayloadFormat, WavesConfig};

/// How often a bed's samples arrive (an IntelliVue wave poll period).
const CHUNK_MS: i64 = 256;

#[derive(Debug, Clone, serde::Serialize)]
pub struct WaveBenchReport {
    pub beds: usize,
    pub format: String,
    pub qos: u8,
    /// Segments stored in the buffer and deleted on their PUBACK (`--waves-durable`).
    pub durable: bool,
    pub seconds: f64,
    pub segments: u64,
    pub segments_per_s: f64,
    /// Segments expected in the measurement (2 waves × beds × seconds, 1 s segments).
    pub segments_expected: f64,
    /// Sequence numbers skipped, over all streams (segments lost on the way).
    pub seq_gaps: u64,
    pub samples_per_s: f64,
    /// Payload and topic bytes the subscriber received per second: what the gateway published.
    pub bytes_per_s: f64,
    /// Segment latency: the end of a segment's last sample to the subscriber.
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub gateway_peak_rss_kib: u64,
    pub gateway_cpu_percent: f64,
    pub broker_cpu_percent: f64,
    pub cpus: usize,
}

fn format_of(s: &str) -> anyhow::Result<PayloadFormat> {
    Ok(match s {
        "canonical" => PayloadFormat::Canonical,
        "fhir" => PayloadFormat::Fhir,
        "hl7v2" => PayloadFormat::Hl7v2,
        other => anyhow::bail!("unknown format {other:?} (canonical, fhir, hl7v2)"),
    })
}

/// One received segment: (stream key, seq, end in ms, samples).
fn parse_segment(payload: &[u8], topic: &str) -> Option<(String, u64, f64, usize)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if let Some(seq) = v["seq"].as_u64() {
        // Canonical.
        let end = Timestamp::parse_rfc3339(v["end"].as_str()?).ok()?.0 as f64;
        return Some((format!("{topic}/{}", v["code"]), seq, end, v["samples"].as_array()?.len()));
    }
    // FHIR: the wave-sequence extension, effectivePeriod.end, the data's values.
    let seq = v["extension"].as_array()?.iter().find(|e| e["url"].as_str().is_some_and(|u| u.ends_with("wave-sequence")))?
        ["valueUnsignedInt"]
        .as_u64()?;
    let end = Timestamp::parse_rfc3339(v["effectivePeriod"]["end"].as_str()?).ok()?.0 as f64;
    let n = v["valueSampledData"]["data"].as_str()?.split_whitespace().count();
    Some((format!("{topic}/{}", v["code"]["coding"][0]["code"]), seq, end, n))
}

pub async fn run(o: BenchOptions) -> anyhow::Result<WaveBenchReport> {
    anyhow::ensure!(o.format != "hl7v2", "--waves measures canonical or fhir payloads (the subscriber parses JSON)");
    format_of(&o.format)?;
    let mosquitto = which("mosquitto").ok_or_else(|| anyhow::anyhow!("mosquitto is not installed (apt-get install mosquitto)"))?;
    let dir = tempfile::Builder::new().prefix("medgw-bench-waves-").tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    std::fs::write(
        dir.path().join("mosquitto.conf"),
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n"),
    )?;
    let log = std::fs::File::create(dir.path().join("mosquitto.log"))?;
    let broker =
        Killed(Command::new(mosquitto).arg("-c").arg(dir.path().join("mosquitto.conf")).stdout(Stdio::null()).stderr(log).spawn()?);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(10), "mosquitto did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Subscriber: (stream, seq, latency ms, samples, bytes) per segment.
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, u64, f64, usize, usize)>();
    let mut opts = rumqttc::MqttOptions::new("medgw-bench-waves-sub", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 1000);
    client.subscribe("medgw/v1/+/+/+/wave", rumqttc::QoS::AtMostOnce).await?;
    let stop = CancellationToken::new();
    let sub_stop = stop.clone();
    let sub = tokio::spawn(async move {
        loop {
            tokio::select! {
                e = events.poll() => match e {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let now = Timestamp::now().0 as f64;
                        if let Some((key, seq, end, n)) = parse_segment(&p.payload, &p.topic) {
                            let _ = tx.send((key, seq, now - end, n, p.payload.len() + p.topic.len()));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                },
                _ = sub_stop.cancelled() => break,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let exe = std::env::current_exe()?;
    let log = std::fs::File::create(dir.path().join("gateway.log"))?;
    let child = Killed(
        Command::new(exe)
            .args(["bench", "--waves-child", "--broker-port", &port.to_string(), "--devices", &o.devices.to_string()])
            .args(["--format", &o.format, "--waves-qos", &o.waves_qos.to_string()])
            .args(o.waves_durable.then_some("--waves-durable"))
            .env("MEDGW_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let pid = child.0.id();
    tokio::time::sleep(o.warmup).await;
    let mut last_seq = std::collections::HashMap::<String, u64>::new();
    while let Ok((key, seq, ..)) = rx.try_recv() {
        last_seq.insert(key, seq);
    }
    let t0 = Instant::now();
    let (cpu0, broker_cpu0) = (cpu_seconds(pid), cpu_seconds(broker.0.id()));
    let (mut latencies, mut samples, mut bytes, mut gaps) = (Vec::new(), 0usize, 0usize, 0u64);
    let deadline = tokio::time::Instant::now() + o.duration;
    loop {
        tokio::select! {
            s = rx.recv() => match s {
                Some((key, seq, latency, n, b)) => {
                    if let Some(prev) = last_seq.insert(key, seq) {
                        gaps += seq.saturating_sub(prev + 1);
                    }
                    latencies.push(latency);
                    samples += n;
                    bytes += b;
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let rss = peak_rss_kib(pid);
    let cpu = (cpu_seconds(pid) - cpu0) / secs * 100.0;
    let broker_cpu = (cpu_seconds(broker.0.id()) - broker_cpu0) / secs * 100.0;
    stop.cancel();
    let _ = sub.await;
    drop(child);
    if o.keep {
        eprintln!("work directory kept: {}", dir.keep().display());
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(WaveBenchReport {
        beds: o.devices,
        format: o.format,
        qos: if o.waves_durable { 1 } else { o.waves_qos },
        durable: o.waves_durable,
        seconds: secs,
        segments: latencies.len() as u64,
        segments_per_s: latencies.len() as f64 / secs,
        segments_expected: 2.0 * o.devices as f64 * secs,
        seq_gaps: gaps,
        samples_per_s: samples as f64 / secs,
        bytes_per_s: bytes as f64 / secs,
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p99: percentile(&latencies, 0.99),
        latency_ms_max: latencies.last().copied().unwrap_or(0.0),
        gateway_peak_rss_kib: rss,
        gateway_cpu_percent: cpu,
        broker_cpu_percent: broker_cpu,
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    })
}

/// The measured process: the real sink and one task per bed feeding the wave path.
pub async fn child(o: BenchOptions) -> anyhow::Result<()> {
    let format = format_of(&o.format)?;
    let port = o.broker_port.ok_or_else(|| anyhow::anyhow!("--waves-child needs --broker-port"))?;
    let dir = tempfile::Builder::new().prefix("medgw-bench-waves-gw-").tempdir()?;
    let buffer_cfg = crate::config::BufferConfig {
        path: dir.path().join("buffer.db"),
        max_bytes: 256 << 20,
        when_full: crate::config::WhenFull::DropOldest,
        commit_interval_ms: 5,
        replay: crate::config::Replay::LiveFirst,
    };
    let (buffer, _) = crate::buffer::open(&buffer_cfg).await?;
    let nom = Arc::new(Nomenclature::builtin());
    let durable = o.waves_durable;
    let waves =
        WavesConfig { enabled: true, segment_ms: 1000, qos: if durable { 1 } else { o.waves_qos }, durable, ..WavesConfig::default() };
    let (_live_tx, live_rx) = mpsc::channel(16);
    let (_aux_tx, aux_rx) = mpsc::channel(16);
    let (wave_tx, wave_rx) = mpsc::channel(waves.queue);
    let stats = Arc::new(crate::sink::mqtt::SinkStats::default());
    // Durable: devices → the durable wave task (stores every segment) → the sink, as `medgw run`.
    let acks = crate::sink::mqtt::waves::WaveAcks::default();
    let wave_rx = if durable {
        buffer.set_wave_budget(waves.max_bytes).await?;
        let (to_sink, from_store) = mpsc::channel(32);
        let task = crate::sink::durable_waves::DurableWaves {
            buffer: buffer.clone(),
            input: wave_rx,
            output: to_sink,
            acks: acks.clone(),
            stats: stats.clone(),
        };
        tokio::spawn(task.run());
        from_store
    } else {
        wave_rx
    };
    let shutdown = CancellationToken::new();
    let sink = tokio::spawn(crate::sink::mqtt::run(crate::sink::mqtt::SinkParams {
        config: MqttConfig {
            host: "127.0.0.1".into(),
            port,
            client_id: "medgw-bench-waves".into(),
            keep_alive_s: 30,
            qos: 1,
            topic_prefix: "medgw/v1".into(),
            format,
            protocol: MqttProtocol::Auto,
            tls: None,
            username: None,
            password: None,
            max_inflight: 100,
        },
        tls: None,
        gateway: "bench-gw".into(),
        replay: buffer_cfg.replay,
        buffer,
        nomenclature: nom.clone(),
        live: live_rx,
        live_overflow: Default::default(),
        aux: aux_rx,
        waves: Some((wave_rx, waves)),
        wave_acks: durable.then_some(acks),
        shutdown: shutdown.clone(),
        stats: stats.clone(),
    }));
    let topics = crate::sink::topics::Topics::new("medgw/v1", "bench-gw");
    for bed in 0..o.devices {
        let link = crate::source::waves::WaveLink { tx: wave_tx.clone(), format, segment_ms: waves.segment_ms, stats: stats.clone() };
        let mut ctx =
            DeviceContext { gateway: "bench-gw".into(), name: format!("mon{bed}"), protocol: "intellivue".into(), ..Default::default() };
        ctx.location.bed = format!("BED{bed}");
        let mut w = crate::source::waves::DeviceWaves::new(link, topics.waves(&ctx), nom.clone());
        let ctx = std::sync::Arc::new(ctx);
        tokio::spawn(async move {
            let live = crate::source::waves::LiveWave::default();
            // Beds out of phase, as real monitors are.
            tokio::time::sleep(Duration::from_millis((bed as u64 * 37) % CHUNK_MS as u64)).await;
            let mut tick = tokio::time::interval(Duration::from_millis(CHUNK_MS as u64));
            let (mut ecg, mut pleth) = (ecg_stream(), pleth_stream());
            loop {
                let now = Timestamp::now();
                tick.tick().await;
                for chunk in [ecg.next(now), pleth.next(now)] {
                    w.push(&chunk, "bench");
                }
                w.publish(&|_| ctx.clone(), &live, now);
            }
        });
    }
    tokio::signal::ctrl_c().await.ok();
    shutdown.cancel();
    let _ = sink.await;
    Ok(())
}

struct Stream {
    metric: medgw_protocols::MdcCode,
    period: SamplePeriod,
    scale: WaveScale,
    per_chunk: usize,
    n: u64,
    started: bool,
}

fn ecg_stream() -> Stream {
    // IntelliVue's ECG scale: raw 0..16383, ±40.96 mV.
    let scale = WaveScale {
        unit: unit::MDC_DIM_MILLI_VOLT,
        lower_raw: 0,
        upper_raw: 16383,
        lower: Decimal::new(-4096, -2).unwrap_or(Decimal::from_int(-41)),
        upper: Decimal::new(40955, -3).unwrap_or(Decimal::from_int(41)),
        min_raw: 0,
        max_raw: 16383,
    };
    Stream { metric: code::MDC_ECG_ELEC_POTL_II, period: SamplePeriod::per_second(500), scale, per_chunk: 128, n: 0, started: false }
}

fn pleth_stream() -> Stream {
    let scale = WaveScale::identity(unit::MDC_DIM_DIMLESS, 0, 4095);
    Stream { metric: code::MDC_PULS_OXIM_PLETH, period: SamplePeriod::per_second(125), scale, per_chunk: 32, n: 0, started: false }
}

impl Stream {
    /// The next chunk, its last sample at `now`: a beat-like shape at 72/min.
    fn next(&mut self, now: Timestamp) -> WaveChunk {
        let samples: Vec<i32> = (0..self.per_chunk as u64)
            .map(|k| {
                let t = (self.n + k) as f64 * self.period.micros as f64 / self.period.samples as f64 / 1e6;
                let phase = (t * 1.2).fract();
                let mid = (self.scale.max_raw - self.scale.min_raw) / 2;
                let beat =
                    if phase < 0.05 { (phase / 0.05 * std::f64::consts::PI).sin() } else { 0.1 * (phase * std::f64::consts::TAU).sin() };
                mid + (beat * mid as f64 * 0.6) as i32
            })
            .collect();
        self.n += self.per_chunk as u64;
        let span = self.period.offset_us(self.per_chunk as u64) / 1000;
        let continuity = if self.started { Continuity::Continuous } else { Continuity::Broken };
        self.started = true;
        WaveChunk {
            metric: self.metric,
            period: self.period,
            scale: self.scale,
            start: Timestamp(now.0 - span),
            continuity,
            flags: Flags::NONE,
            samples,
            marks: Vec::new(),
        }
    }
}

/// Prints the report as a table and one JSON line.
pub fn print(r: &WaveBenchReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "medgw bench --waves: {} beds × (ECG 500/s + pleth 125/s), format {}, QoS {}{}, {} CPUs",
        r.beds,
        r.format,
        r.qos,
        if r.durable { ", durable (stored, deleted on PUBACK)" } else { "" },
        r.cpus
    )?;
    writeln!(
        out,
        "  delivered        {} segments in {:.1} s = {:.1}/s (expected {:.0}), {} sequence gaps, {:.0} samples/s",
        r.segments, r.seconds, r.segments_per_s, r.segments_expected, r.seq_gaps, r.samples_per_s
    )?;
    writeln!(out, "  to the broker    {:.1} KiB/s", r.bytes_per_s / 1024.0)?;
    writeln!(
        out,
        "  latency          p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (segment end -> subscriber; samples come every {CHUNK_MS} ms)",
        r.latency_ms_p50, r.latency_ms_p99, r.latency_ms_max
    )?;
    writeln!(
        out,
        "  gateway peak RSS {:.1} MiB, CPU {:.1} % of one core (Mosquitto {:.1} %)",
        r.gateway_peak_rss_kib as f64 / 1024.0,
        r.gateway_cpu_percent,
        r.broker_cpu_percent
    )?;
    writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default())
}
