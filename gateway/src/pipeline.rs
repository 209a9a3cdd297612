//! The daemon: configuration → sources → normaliser → buffer → sink, and a graceful stop.
//!
//! ```text
//!  [serial task]──┐ decode+normalise   ┌──────────────┐  live (bounded)  ┌───────────┐
//!  [serial task]──┼──── append ───────▶│ buffer thread │────────────────▶│ MQTT sink │──▶ broker
//!  [serial task]──┘   (awaits fsync)   │ (SQLite, WAL) │◀── backlog ─────│   task    │
//!                                       └──────────────┘◀── acks ────────└───────────┘
//! ```
//! Each `[[sink]]` (an interface engine over MLLP) is one more sink task beside the MQTT sink,
//! with its own live queue and its own buffer cursor; the buffer deletes a row when every sink
//! has it.
//!
//! Every channel is bounded. A source waits for its batch to be durable before it reads on
//! (backpressure); the live hand-over never blocks (rows it cannot take stay in the buffer and
//! the sink's backlog cursor finds them).

use std::sync::Arc;

use medgw_protocols::nomenclature::Nomenclature;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::buffer::{BufferEvent, BufferHandle};
use crate::config::{Config, SourceConfig};
use crate::events::{Event, EventKind};
use crate::sink::mllp::alarms::{AlarmFeed, AlarmSinkParams, AlarmSinkStats};
use crate::sink::mllp::{self, MllpParams, MllpStats};
use crate::sink::mqtt::{self, AuxMessage, SinkParams, SinkStats};
use crate::sink::topics::Topics;
use crate::source::{ble, serial, DeviceRunner, DeviceStatus, PipelineLink};

/// What a running gateway exposes to the status page, the demo view and the benchmark.
#[derive(Clone)]
pub struct Running {
    pub config: Arc<Config>,
    pub devices: Vec<Arc<DeviceStatus>>,
    pub sink: Arc<SinkStats>,
    /// One per `[[sink]]` (MLLP) carrying observations, in configuration order.
    pub mllp: Vec<Arc<MllpStats>>,
    /// One per `[[sink]]` carrying alarms (PCD-04 to an Alarm Manager), in configuration order.
    pub mllp_alarms: Vec<Arc<AlarmSinkStats>>,
    pub buffer: BufferHandle,
    pub nomenclature: Arc<Nomenclature>,
    pub started: medgw_protocols::Timestamp,
    /// Where the status page listens, if it is enabled and bound.
    pub status_addr: Option<std::net::SocketAddr>,
    /// The ADT association, when `[adt]` is configured.
    pub adt: Option<AdtView>,
}

/// What the status page shows of the ADT association.
#[derive(Clone)]
pub struct AdtView {
    pub shared: Arc<crate::adt::Shared>,
    /// Where the MLLP listener accepts the feed.
    pub listen: Option<std::net::SocketAddr>,
    /// The latest association events (no patient data), newest last.
    pub recent: Arc<std::sync::Mutex<std::collections::VecDeque<Event>>>,
}

/// Association events the status page keeps.
const RECENT_ADT_EVENTS: usize = 50;

/// Loads the nomenclature: built-in tables plus the site's override file.
pub fn nomenclature(config: &Config) -> anyhow::Result<Arc<Nomenclature>> {
    Ok(Arc::new(match &config.gateway.nomenclature {
        Some(path) => crate::nomenclature_file::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => Nomenclature::builtin(),
    }))
}

/// Starts everything; returns the handle and a future that completes when the gateway has
/// stopped after `shutdown` was cancelled.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<(Running, impl std::future::Future<Output = ()>)> {
    let config = Arc::new(config);
    // Before anything runs: a sink that cannot connect by construction is a fatal error (the
    // process exits and systemd restarts and alerts), never a gateway that buffers forever.
    let tls = match &config.mqtt.tls {
        Some(t) => Some(mqtt::transport::tls_config(t).map_err(|e| anyhow::anyhow!("MQTT sink cannot start: {e}"))?),
        None => None,
    };
    let mut mllp_tls = Vec::new();
    for s in &config.sinks {
        let crate::config::SinkConfig::Mllp(m) = s;
        mllp_tls.push(match &m.tls {
            Some(t) => Some(mqtt::transport::tls_config(t).map_err(|e| anyhow::anyhow!("MLLP sink {} cannot start: {e}", m.name))?),
            None => None,
        });
    }
    let nom = nomenclature(&config)?;
    let (buffer, startup) = crate::buffer::open(&config.buffer).await?;
    // Before any sink reads: which sinks a row must reach before it is deleted.
    buffer.set_sinks(mllp::sink_names(&config)).await?;
    // The live hand-over: a queue per sink, the MQTT sink's first.
    let mut live = crate::buffer::live::LiveHandOver::builder();
    let mqtt_live = live.sink(mqtt::outbox::LIVE_CAPACITY);
    let (aux_tx, aux_rx) = mpsc::channel(1024);
    // Waves (`[waves]`): a channel only when some device publishes them.
    let any_waves = config.devices.iter().any(|d| config.waves_enabled(d));
    let (wave_tx, wave_rx) = mpsc::channel(config.waves.queue);
    // Durable waves: the budget before anything is stored (0 deletes what a durable run left).
    let durable_waves = any_waves && config.waves.durable;
    let stored = buffer.set_wave_budget(if durable_waves { config.waves.max_bytes } else { 0 }).await?;
    if stored > 0 {
        tracing::info!(segments = stored, "stored wave segments from before the restart will be sent");
    }
    let wave_acks = crate::sink::mqtt::waves::WaveAcks::default();
    let (wave_rx, wave_store) = if durable_waves {
        // Devices → the durable task (stores) → the sink, which reads ahead a few only.
        let (to_sink, from_store) = mpsc::channel(32);
        (from_store, Some((wave_rx, to_sink)))
    } else {
        (wave_rx, None)
    };
    let topics = Topics::new(&config.mqtt.topic_prefix, &config.gateway.id);
    let sink_stats = Arc::new(SinkStats::default());
    let sink_shutdown = CancellationToken::new();
    let sink = tokio::spawn(mqtt::run(SinkParams {
        config: config.mqtt.clone(),
        tls,
        gateway: config.gateway.id.clone(),
        replay: config.buffer.replay,
        buffer: buffer.clone(),
        nomenclature: nom.clone(),
        live: mqtt_live.rows,
        live_overflow: mqtt_live.overflow,
        aux: aux_rx,
        waves: any_waves.then_some((wave_rx, config.waves)),
        wave_acks: durable_waves.then(|| wave_acks.clone()),
        shutdown: sink_shutdown.clone(),
        stats: sink_stats.clone(),
    }));
    let wave_store = wave_store.map(|(input, output)| {
        tokio::spawn(
            crate::sink::durable_waves::DurableWaves { buffer: buffer.clone(), input, output, acks: wave_acks, stats: sink_stats.clone() }
                .run(),
        )
    });
    let mllp_shutdown = CancellationToken::new();
    let mut mllp_stats = Vec::new();
    let mut mllp_tasks = Vec::new();
    let mut alarm_feed = AlarmFeed::default();
    let mut alarm_stats = Vec::new();
    for (s, tls) in config.sinks.iter().zip(mllp_tls) {
        let crate::config::SinkConfig::Mllp(m) = s;
        if m.carries.alarms {
            // Its own connection and in-memory queue (sink/mllp/alarms.rs).
            let stats = Arc::new(AlarmSinkStats { name: m.name.clone(), ..Default::default() });
            alarm_stats.push(stats.clone());
            mllp_tasks.push(tokio::spawn(mllp::alarms::run(AlarmSinkParams {
                config: m.clone(),
                tls: tls.clone(),
                rx: alarm_feed.add(stats.clone()),
                aux: aux_tx.clone(),
                events_topic: topics.gateway_events(),
                shutdown: mllp_shutdown.clone(),
                stats,
            })));
        }
        if !m.carries.observations {
            continue;
        }
        let stats = Arc::new(MllpStats::new(m));
        mllp_stats.push(stats.clone());
        mllp_tasks.push(tokio::spawn(mllp::run(MllpParams {
            live: live.sink(mqtt::outbox::LIVE_CAPACITY),
            overflow_check: mllp::OVERFLOW_CHECK,
            config: m.clone(),
            tls,
            replay: config.buffer.replay,
            buffer: buffer.clone(),
            nomenclature: nom.clone(),
            aux: aux_tx.clone(),
            events_topic: topics.gateway_events(),
            shutdown: mllp_shutdown.clone(),
            stats,
        })));
    }
    let link = PipelineLink {
        buffer: buffer.clone(),
        live: live.build(),
        aux: aux_tx.clone(),
        topics: topics.clone(),
        waves: any_waves.then(|| crate::source::waves::WaveLink {
            tx: wave_tx,
            format: config.mqtt.format,
            segment_ms: config.waves.segment_ms,
            stats: sink_stats.clone(),
        }),
        when_full: config.buffer.when_full,
        shutdown: shutdown.clone(),
        alarm_sinks: alarm_feed,
    };
    // The association state before any device reads: no reading is attributed without it.
    let manual: Vec<(&str, &medgw_protocols::observation::Patient)> =
        config.devices.iter().filter_map(|d| d.patient.as_ref().map(|p| (d.bed.as_str(), p))).collect();
    let (adt, adt_view, adt_forward) = match &config.adt {
        Some(settings) => {
            let (svc, mut audit) = crate::adt::service::AdtService::start(settings, manual).await?;
            let view = AdtView { shared: svc.shared.clone(), listen: svc.addr, recent: Default::default() };
            // Every audit event: logged (identifiers at debug only), published as a gateway
            // event, kept for the status page.
            let (aux, topic, recent, stop) = (aux_tx.clone(), topics.gateway_events(), view.recent.clone(), CancellationToken::new());
            let stop2 = stop.clone();
            let task = tokio::spawn(async move {
                let forward = |a: medgw_protocols::association::AuditEvent| {
                    crate::adt::listener::log_audit(&a);
                    let e = crate::adt::audit::event(&a);
                    if let Ok(json) = serde_json::to_vec(&e) {
                        let _ = aux.try_send(AuxMessage { topic: topic.clone(), payload: json.into(), retain: false, sticky: false });
                    }
                    if let Ok(mut r) = recent.lock() {
                        if r.len() == RECENT_ADT_EVENTS {
                            r.pop_front();
                        }
                        r.push_back(e);
                    }
                };
                loop {
                    tokio::select! {
                        _ = stop2.cancelled() => break,
                        a = audit.recv() => match a {
                            Some(a) => forward(a),
                            None => return,
                        },
                    }
                }
                while let Ok(a) = audit.try_recv() {
                    forward(a);
                }
            });
            (Some(svc), Some(view), Some((stop, task)))
        }
        None => (None, None, None),
    };
    let mut tasks = JoinSet::new();
    let mut devices = Vec::new();
    let mut network = crate::source::network::Network::default();
    for d in &config.devices {
        let mut runner = DeviceRunner::new(&config, d, nom.clone(), link.clone());
        if let Some(adt) = &adt {
            runner.associate(adt);
        }
        devices.push(runner.status.clone());
        // The retained active-alarm summary, now and every 30 s, until the gateway stops.
        tokio::spawn(crate::source::alarms::heartbeat(runner.status.alarms.clone(), aux_tx.clone(), shutdown.clone()));
        match &d.source {
            SourceConfig::Serial { port, settings } => {
                tasks.spawn(serial::run(runner, port.clone(), *settings));
            }
            SourceConfig::Ble { address, name, services } => {
                let cursor = ble::cursor_file::path_for(&config.buffer.path, &d.name);
                let params = ble::BleParams::new(address.as_deref(), name.as_deref(), services, config.device_zone(d), cursor);
                tasks.spawn(ble::run(runner, ble::system_transport(), params));
            }
            SourceConfig::TcpClient { .. } | SourceConfig::Rfc2217 { .. } | SourceConfig::TcpServer { .. } => {
                network.spawn(&mut tasks, runner).map_err(|e| anyhow::anyhow!("device {}: {e}", d.name))?;
            }
        }
    }
    network.start(&mut tasks, &link);
    drop(link);
    let started =
        Event::gateway(EventKind::Gateway, format!("medgw {} started with {} devices", env!("CARGO_PKG_VERSION"), config.devices.len()));
    started.log();
    if let Ok(json) = serde_json::to_vec(&started) {
        let _ = aux_tx.try_send(AuxMessage { topic: topics.gateway_events(), payload: json.into(), retain: false, sticky: false });
    }
    if let Some(q) = &startup.quarantine {
        let e = quarantine_event(q);
        if let Ok(json) = serde_json::to_vec(&e) {
            let _ = aux_tx.try_send(AuxMessage { topic: topics.gateway_events(), payload: json.into(), retain: false, sticky: false });
        }
    }
    if let Some(mut events) = buffer.take_events() {
        // What the storage thread reports while running (disk full and back, damage):
        // published as gateway events. Not logged again: the buffer logged each where it
        // happened. Ends when the buffer thread does.
        let (aux, topic) = (aux_tx.clone(), topics.gateway_events());
        tokio::spawn(async move {
            while let Some(b) = events.recv().await {
                let e = buffer_event(&b);
                if let Ok(json) = serde_json::to_vec(&e) {
                    let _ = aux.try_send(AuxMessage { topic: topic.clone(), payload: json.into(), retain: false, sticky: false });
                }
            }
        });
    }
    tracing::info!(depth = startup.depth, check = startup.check, "buffer open");
    drop(aux_tx);
    let mut running = Running {
        config: config.clone(),
        devices,
        sink: sink_stats,
        mllp: mllp_stats,
        mllp_alarms: alarm_stats,
        buffer: buffer.clone(),
        nomenclature: nom,
        started: medgw_protocols::Timestamp::now(),
        status_addr: None,
        adt: adt_view,
    };
    let status_shutdown = CancellationToken::new();
    let mut status_task = None;
    if config.status.enabled {
        // The status page is not on the data path: if it cannot bind, the gateway runs without it.
        match crate::status::serve(running.clone(), config.status.clone(), status_shutdown.clone()).await {
            Ok((addr, task)) => {
                running.status_addr = Some(addr);
                status_task = Some(task);
            }
            Err(e) => tracing::error!(bind = %config.status.bind, error = %e, "status page not available"),
        }
    }
    let done = async move {
        shutdown.cancelled().await;
        tracing::info!("stopping: sources finish what they read, the sink waits for acknowledgements in flight");
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "a device task failed");
            }
        }
        if let Some(adt) = adt {
            // The feed is answered no more; what it sent and we acknowledged is persisted.
            adt.stop().await;
        }
        if let Some((stop, task)) = adt_forward {
            stop.cancel();
            let _ = task.await;
        }
        // The MLLP sinks first (each waits a little for ACKs in flight), so that their last
        // events still go out over MQTT.
        mllp_shutdown.cancel();
        for t in mllp_tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "an MLLP sink task failed");
            }
        }
        // Sources are gone, so the live channel closes; the sink drains and disconnects.
        sink_shutdown.cancel();
        if let Err(e) = sink.await {
            tracing::error!(error = %e, "the MQTT sink task failed");
        }
        // Durable waves: every segment the devices closed is stored, the last PUBACKs applied.
        if let Some(t) = wave_store {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "the durable wave task failed");
            }
        }
        status_shutdown.cancel();
        if let Some(t) = status_task {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "the status server task failed");
            }
        }
        buffer.close().await;
        tracing::info!("stopped");
    };
    Ok((running, done))
}

fn quarantine_event(q: &crate::buffer::QuarantineReport) -> Event {
    Event::gateway(
        EventKind::BufferQuarantined,
        format!(
            "buffer file damaged ({}): moved to {}; {} entries kept, {} undecodable, {} unreadable ranges",
            q.reason,
            q.moved_to.display(),
            q.salvaged,
            q.undecodable,
            q.unreadable_ranges.len()
        ),
    )
    .with_count(q.undecodable + q.unreadable_ranges.len() as u64)
}

/// The gateway event for what the buffer reported.
fn buffer_event(b: &BufferEvent) -> Event {
    match b {
        BufferEvent::DiskFull { detail, .. } => Event::gateway(EventKind::BufferDiskFull, detail.clone()),
        BufferEvent::DiskOk { free_bytes, capacity_bytes } => Event::gateway(
            EventKind::BufferDiskOk,
            format!(
                "the buffer's file system has room again ({} bytes free): disk reserve in place, capacity {capacity_bytes} bytes",
                free_bytes.unwrap_or(0)
            ),
        ),
        BufferEvent::Quarantined(q) => quarantine_event(q),
    }
}

/// Waits for SIGTERM or SIGINT.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
