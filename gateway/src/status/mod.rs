//! The operator surface: a status page for the ward PC and the phone, a JSON API, health
//! endpoints for supervisors and Prometheus metrics.
//!
//! Served on loopback by default, where it answers only requests addressed to a loopback name
//! (`access.rs`: a rebound DNS name is refused). Bound to any other address it requires a
//! token (bearer, the password of HTTP basic auth so a browser can prompt for it, or the
//! session cookie `/login` sets for a kiosk display): the page shows bed-level clinical values.
//! `/healthz` answers without a token so a load balancer can probe it. Every answer is
//! `no-store` and may not be framed (`headers.rs`); connections are bounded in number and time
//! (`server.rs`) so the operator surface cannot starve device input of file descriptors.

mod access;
mod headers;
mod metrics;
mod server;
mod wave;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use medgw_protocols::Timestamp;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{Secret, StatusConfig};
use crate::pipeline::Running;

const PAGE: &str = include_str!("page.html");
const LOGIN: &str = include_str!("login.html");
/// The longest a request may take once its headers are in.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a connection stays open, however busy.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct AppState {
    running: Running,
    token: Option<Arc<Secret>>,
    /// The session cookie's value, derived from the token.
    session: Option<Arc<String>>,
    /// The bound port, for the `Host` check.
    port: u16,
    page_policy: Arc<String>,
    login_policy: Arc<String>,
}

#[derive(Serialize)]
pub struct GatewayInfo {
    pub id: String,
    pub site: String,
    pub unit: String,
    pub version: &'static str,
    pub started: Timestamp,
    pub uptime_s: i64,
}

#[derive(Serialize)]
pub struct BrokerInfo {
    pub host: String,
    pub port: u16,
    pub connected: bool,
    pub mqtt5: bool,
    /// The broker's Receive Maximum (MQTT 5 CONNACK), when it announced one.
    pub broker_receive_maximum: Option<u64>,
    /// Messages in flight at most: `max_inflight` or the broker's Receive Maximum if lower.
    pub in_flight_limit: u64,
    pub published: u64,
    pub delivered: u64,
    pub refused: u64,
    pub reconnects: u64,
}

#[derive(Serialize)]
pub struct BufferInfo {
    pub depth: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub oldest_age_s: Option<f64>,
    pub dropped_total: u64,
    pub quarantined: u64,
    /// The buffer's file system is full (see the `buffer-disk-full` event).
    pub disk_full: bool,
    pub disk_free_bytes: Option<u64>,
    /// What entries may use now (lower than `max_bytes` on a small or full disk).
    pub capacity_bytes: u64,
    pub reserve_bytes: u64,
    pub reserve_present: bool,
    pub reserve_writes: u64,
    /// Rows a sink's receiver rejected for good (`medgw buffer stats|export` list them).
    pub dead_lettered: u64,
    /// Durable wave segments stored, their bytes and budget (`[waves] durable`), and those the
    /// waves' drop-oldest deleted.
    pub wave_segments: u64,
    pub wave_bytes: u64,
    pub wave_max_bytes: u64,
    pub waves_dropped_total: u64,
}

/// One `[[sink]]` (an interface engine over MLLP).
#[derive(Serialize)]
pub struct MllpSinkReport {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub connected: bool,
    pub in_flight: u64,
    pub acked_messages: u64,
    pub acked_observations: u64,
    /// ACKs that refused or failed a message (AR/CR, AE/CE; each retry counts).
    pub rejected: u64,
    pub dead_lettered_messages: u64,
    pub dead_lettered_observations: u64,
    pub reconnects: u64,
    pub ack_timeouts: u64,
    /// Observations buffered that this sink has not delivered yet.
    pub backlog: Option<u64>,
}

impl MllpSinkReport {
    fn new(m: &crate::sink::mllp::MllpStats, backlog: Option<u64>) -> MllpSinkReport {
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        MllpSinkReport {
            name: m.name.clone(),
            host: m.host.clone(),
            port: m.port,
            connected: m.connected.load(Ordering::Relaxed),
            in_flight: n(&m.in_flight),
            acked_messages: n(&m.acked_messages),
            acked_observations: n(&m.acked_rows),
            rejected: n(&m.rejected),
            dead_lettered_messages: n(&m.dead_lettered_messages),
            dead_lettered_observations: n(&m.dead_lettered_rows),
            reconnects: n(&m.reconnects),
            ack_timeouts: n(&m.ack_timeouts),
            backlog,
        }
    }
}

/// The MLLP sinks as the status page and metrics show them, with their backlog from `stats`.
pub fn mllp_reports(r: &Running, stats: Option<&crate::buffer::BufferStats>) -> Vec<MllpSinkReport> {
    r.mllp
        .iter()
        .map(|m| {
            let backlog = stats.and_then(|s| s.sinks.iter().find(|b| b.name == m.name)).map(|b| b.backlog);
            MllpSinkReport::new(m, backlog)
        })
        .collect()
}

#[derive(Serialize)]
pub struct StatusReport {
    pub gateway: GatewayInfo,
    pub broker: BrokerInfo,
    pub buffer: Option<BufferInfo>,
    pub devices: usize,
    pub devices_connected: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adt: Option<AdtReport>,
    /// The `[[sink]]`s (MLLP), when configured.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<MllpSinkReport>,
    /// The `[[sink]]`s carrying alarms to an Alarm Manager, when configured.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alarm_sinks: Vec<crate::sink::mllp::alarms::AlarmSinkReport>,
}

#[derive(Serialize)]
pub struct LatestValue {
    pub metric: String,
    pub display: String,
    pub value: Option<String>,
    pub unit: String,
    pub flags: Vec<&'static str>,
    pub time: Timestamp,
    /// Seconds since `time` by the gateway's clock, so the page can show how old a value is
    /// (an intermittent NIBP, or the last values of a device that went silent) without
    /// trusting the browser's clock.
    pub age_s: f64,
}

#[derive(Serialize)]
pub struct DeviceReport {
    pub name: String,
    pub bed: String,
    pub protocol: String,
    pub port: String,
    pub state: crate::source::DeviceState,
    /// The protocol session's state (IntelliVue association: `associating`, `associated`,
    /// `refused`, ...); absent for protocols without a session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<&'static str>,
    pub last_data_age_s: Option<f64>,
    pub observations: u64,
    pub rejected: u64,
    pub gaps: u64,
    pub reconnects: u64,
    pub latest: Vec<LatestValue>,
    /// The device's active alarms and technical alerts, oldest first.
    pub alarms: Vec<AlarmEntry>,
    /// The bed's patient association now, when `[adt]` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association: Option<AssociationReport>,
}

/// An active alarm as the page shows it: coloured by `priority`, technical alerts apart.
#[derive(Serialize)]
pub struct AlarmEntry {
    pub id: String,
    /// `physiological`, `technical` or `advisory`.
    pub kind: &'static str,
    /// `high`, `medium`, `low`, `no-alarm`; absent when the device gives none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<&'static str>,
    pub text: String,
    pub vendor: String,
    pub code: u32,
    pub started: Timestamp,
    /// Seconds since it started, by the gateway's clock.
    pub age_s: f64,
}

pub fn kind_name(k: medgw_protocols::alarm::AlarmKind) -> &'static str {
    use medgw_protocols::alarm::AlarmKind;
    match k {
        AlarmKind::Physiological => "physiological",
        AlarmKind::Technical => "technical",
        AlarmKind::Advisory => "advisory",
    }
}

/// The active alarms of a device at `now`.
pub fn alarm_entries(board: &crate::source::alarms::AlarmBoard, now: Timestamp) -> Vec<AlarmEntry> {
    use medgw_protocols::alarm::Priority;
    board
        .active()
        .into_iter()
        .map(|a| AlarmEntry {
            kind: kind_name(a.kind),
            priority: a.priority.map(|p| match p {
                Priority::High => "high",
                Priority::Medium => "medium",
                Priority::Low => "low",
                Priority::NoAlarm => "no-alarm",
            }),
            age_s: age_s(now, a.started),
            id: a.id,
            text: a.text,
            vendor: a.vendor,
            code: a.code,
            started: a.started,
        })
        .collect()
}

/// A bed's association as the status page shows it. Who the patient is (`patient`) only to a
/// client that presented the token: without a token the surface answers loopback clients
/// unauthenticated, and they see the state alone.
#[derive(Serialize)]
pub struct AssociationReport {
    /// `associated`, `manual`, `unassociated`, `ended`, `conflict` or `mismatch`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientReport>,
}

#[derive(Serialize)]
pub struct PatientReport {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visit: Option<String>,
}

#[derive(Serialize)]
pub struct AdtReport {
    /// Where the MLLP listener accepts the feed (absent: the state is used, nothing listens).
    pub listen: Option<SocketAddr>,
    pub beds_associated: usize,
    /// ADT messages that named a location that is not one of this gateway's beds.
    pub unmapped_messages: u64,
    pub unmapped_locations: usize,
    /// The latest association events (no patient data), newest last.
    pub events: Vec<crate::events::Event>,
}

/// The association of `bed` now; the patient only when `identified`.
pub fn association_report(adt: &crate::pipeline::AdtView, bed: &str, identified: bool) -> AssociationReport {
    use medgw_protocols::association::{Attribution, BedState, Source};
    let snap = adt.shared.snapshot();
    let now = Timestamp::now();
    let since = match snap.current(bed) {
        BedState::Associated { since, .. } => Some(*since),
        BedState::Ended { at, .. } => Some(*at),
        BedState::Unassociated => None,
    };
    let report = |p: &medgw_protocols::association::Patient| PatientReport {
        id: p.id.id.clone(),
        system: medgw_protocols::observation::AdtFields::system_of(&p.id),
        name: p.name.as_ref().map(|n| format!("{}, {}", n.family, n.given).trim_matches([',', ' ']).to_string()),
        visit: p.visit.as_ref().map(|v| v.id.clone()),
    };
    let (state, patient) = match snap.patient_at(bed, now) {
        Attribution::Patient { source: Source::Manual, patient } => ("manual", Some(report(&patient))),
        Attribution::Patient { patient, .. } => ("associated", Some(report(&patient))),
        Attribution::Unassociated if matches!(snap.current(bed), BedState::Ended { .. }) => ("ended", None),
        Attribution::Unassociated => ("unassociated", None),
        Attribution::Conflict { .. } => ("conflict", None),
        Attribution::Mismatch { .. } => ("mismatch", None),
    };
    AssociationReport { state, since, patient: patient.filter(|_| identified) }
}

pub fn adt_report(adt: &crate::pipeline::AdtView) -> AdtReport {
    let snap = adt.shared.snapshot();
    let (unmapped, other) = snap.unmapped();
    AdtReport {
        listen: adt.listen,
        beds_associated: snap
            .beds()
            .filter(|b| matches!(snap.current(b), medgw_protocols::association::BedState::Associated { .. }))
            .count(),
        unmapped_messages: unmapped.values().sum::<u64>() + other,
        unmapped_locations: unmapped.len(),
        events: adt.recent.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default(),
    }
}

pub async fn status_report(r: &Running) -> StatusReport {
    let now = Timestamp::now();
    let stats = r.buffer.stats().await.ok();
    let sinks = mllp_reports(r, stats.as_ref());
    let buffer = stats.map(|s| BufferInfo {
        depth: s.depth,
        bytes: s.bytes,
        max_bytes: s.max_bytes,
        oldest_age_s: s.oldest.map(|t| (now.0 - t.0) as f64 / 1000.0),
        dropped_total: s.dropped_total,
        quarantined: s.quarantined,
        disk_full: s.disk_full,
        disk_free_bytes: s.disk_free_bytes,
        capacity_bytes: s.capacity_bytes,
        reserve_bytes: s.reserve_bytes,
        reserve_present: s.reserve_present,
        reserve_writes: s.reserve_writes,
        dead_lettered: s.dead_lettered,
        wave_segments: s.wave_segments,
        wave_bytes: s.wave_bytes,
        wave_max_bytes: s.wave_max_bytes,
        waves_dropped_total: s.waves_dropped_total,
    });
    let c = &r.config;
    StatusReport {
        gateway: GatewayInfo {
            id: c.gateway.id.clone(),
            site: c.gateway.site.clone(),
            unit: c.gateway.unit.clone(),
            version: env!("CARGO_PKG_VERSION"),
            started: r.started,
            uptime_s: (now.0 - r.started.0) / 1000,
        },
        broker: BrokerInfo {
            host: c.mqtt.host.clone(),
            port: c.mqtt.port,
            connected: r.sink.connected.load(Ordering::Relaxed),
            mqtt5: r.sink.mqtt5.load(Ordering::Relaxed),
            broker_receive_maximum: Some(r.sink.broker_receive_maximum.load(Ordering::Relaxed)).filter(|n| *n > 0),
            in_flight_limit: r.sink.in_flight_limit.load(Ordering::Relaxed),
            published: r.sink.published.load(Ordering::Relaxed),
            delivered: r.sink.delivered.load(Ordering::Relaxed),
            refused: r.sink.refused.load(Ordering::Relaxed),
            reconnects: r.sink.reconnects.load(Ordering::Relaxed),
        },
        buffer,
        devices: r.devices.len(),
        devices_connected: r.devices.iter().filter(|d| d.state() == crate::source::DeviceState::Connected).count(),
        adt: r.adt.as_ref().map(adt_report),
        sinks,
        alarm_sinks: r.mllp_alarms.iter().map(|s| s.report()).collect(),
    }
}

/// Seconds from `then` to `now`, never negative.
fn age_s(now: Timestamp, then: Timestamp) -> f64 {
    (now.0 - then.0).max(0) as f64 / 1000.0
}

/// Every device's report; the association's patient only when `identified` (token presented).
pub fn device_reports(r: &Running, identified: bool) -> Vec<DeviceReport> {
    let now = Timestamp::now();
    let nom = &r.nomenclature;
    r.devices
        .iter()
        .map(|d| {
            let latest = d
                .latest
                .lock()
                .map(|l| {
                    l.iter()
                        .map(|o| {
                            let rd = &o.reading;
                            let entry = nom.metric(rd.metric);
                            let name = match (&entry, &rd.vendor) {
                                (Some(e), _) => e.display.to_string(),
                                (None, Some(v)) => format!("{} {}", v.namespace, v.code),
                                (None, None) => rd.metric.0.to_string(),
                            };
                            let value = match &rd.value {
                                medgw_protocols::observation::Value::Numeric(d) => Some(d.to_string()),
                                medgw_protocols::observation::Value::Compound(cs) => Some(
                                    cs.iter()
                                        .map(|c| match &c.value {
                                            medgw_protocols::observation::Scalar::Numeric(d) => d.to_string(),
                                            medgw_protocols::observation::Scalar::Absent(_) => "-".into(),
                                        })
                                        .collect::<Vec<_>>()
                                        .join("/"),
                                ),
                                _ => None,
                            };
                            LatestValue {
                                metric: entry.map(|e| e.ref_id.to_string()).unwrap_or_default(),
                                display: name,
                                value,
                                unit: nom.unit(rd.unit).map(|u| u.display.to_string()).unwrap_or_default(),
                                flags: rd.flags.names().collect(),
                                time: rd.effective_time(),
                                age_s: age_s(now, rd.effective_time()),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            DeviceReport {
                name: d.name.clone(),
                bed: d.bed.clone(),
                protocol: d.protocol.clone(),
                port: d.port.clone(),
                state: d.state(),
                session: d.session(),
                last_data_age_s: d.last_data.lock().ok().and_then(|g| *g).map(|t| (now.0 - t.0) as f64 / 1000.0),
                observations: d.observations.load(Ordering::Relaxed),
                rejected: d.rejected.load(Ordering::Relaxed),
                gaps: d.gaps.load(Ordering::Relaxed),
                reconnects: d.reconnects.load(Ordering::Relaxed),
                latest,
                alarms: alarm_entries(&d.alarms, now),
                association: r.adt.as_ref().map(|a| association_report(a, &d.bed, identified)),
            }
        })
        .collect()
}

async fn page(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_SECURITY_POLICY, s.page_policy.as_str())], Html(PAGE)).into_response()
}

/// The sign-in form, with an optional message in place of its marker.
fn login_page(s: &AppState, status: StatusCode, message: &str) -> Response {
    let html = LOGIN.replace("<!--message-->", message);
    (status, [(header::CONTENT_SECURITY_POLICY, s.login_policy.as_str())], Html(html)).into_response()
}

async fn login_form(State(s): State<AppState>) -> Response {
    login_page(&s, StatusCode::OK, "")
}

#[derive(serde::Deserialize)]
struct Login {
    token: String,
}

/// Signs a browser in (a kiosk display cannot put the token in a URL or answer a prompt): the
/// right token sets the session cookie and goes to the page.
async fn login(State(s): State<AppState>, headers: HeaderMap, Form(form): Form<Login>) -> Response {
    let (Some(token), Some(session)) = (&s.token, &s.session) else {
        return Redirect::to("./").into_response();
    };
    if !access::same(form.token.as_bytes(), token.expose().as_bytes()) {
        tracing::warn!("status page: sign-in refused (wrong token)");
        return login_page(&s, StatusCode::UNAUTHORIZED, "<p class=\"error\">Wrong token.</p>");
    }
    let cookie = access::session_cookie(session, access::via_https(&headers));
    ([(header::SET_COOKIE, cookie)], Redirect::to("./")).into_response()
}

async fn api_status(State(s): State<AppState>) -> Json<StatusReport> {
    Json(status_report(&s.running).await)
}

async fn api_devices(State(s): State<AppState>) -> Json<Vec<DeviceReport>> {
    // Every request that gets here presented the token when one is configured (require_token).
    Json(device_reports(&s.running, s.token.is_some()))
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the broker is connected and the buffer answers and has disk space (on a full
/// disk observations are dropped or not read, so the gateway is not doing its job).
async fn readyz(State(s): State<AppState>) -> Response {
    let broker = s.running.sink.connected.load(Ordering::Relaxed);
    let stats = s.running.buffer.stats().await;
    let buffer = stats.is_ok();
    // An interface engine that is away while observations wait for it: not ready. (An idle
    // sink may have no connection open: that is not a fault.)
    if let Ok(b) = &stats {
        for m in mllp_reports(&s.running, Some(b)) {
            if !m.connected && m.backlog.unwrap_or(0) > 0 {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: MLLP sink {} not connected ({} observations buffered for it)\n", m.name, m.backlog.unwrap_or(0)),
                )
                    .into_response();
            }
        }
    }
    if stats.is_ok_and(|b| b.disk_full) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: the buffer's disk is full (see the buffer-disk-full event)\n")
            .into_response();
    }
    match (broker, buffer) {
        (true, true) => (StatusCode::OK, "ready\n").into_response(),
        (false, _) => {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: MQTT broker not connected (observations are buffered)\n").into_response()
        }
        (_, false) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: buffer unavailable\n").into_response(),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let text = metrics::render(&s.running).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match (&s.token, &s.session) {
        (Some(t), Some(session)) if !access::authorized(req.headers(), t.expose(), session) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"medgw\", charset=\"UTF-8\"")],
            "token required (a browser without a prompt signs in at /login)\n",
        )
            .into_response(),
        _ => next.run(req).await,
    }
}

/// Without a token (the loopback default), answers only requests addressed to a loopback name,
/// so a web page whose DNS name is rebound to 127.0.0.1 cannot read the status surface.
async fn check_host(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if s.token.is_none() {
        let host = req.headers().get(header::HOST).map(|h| h.to_str().unwrap_or(""));
        if let Some(host) = host {
            if !access::loopback_host(host, s.port) {
                tracing::debug!("status page: refused a request for another host name");
                return (StatusCode::MISDIRECTED_REQUEST, "this status page answers only to localhost (Host header)\n").into_response();
            }
        }
    }
    next.run(req).await
}

/// Bounds the time a request takes once its headers are in (reading a form, the buffer).
async fn deadline(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the request took too long\n").into_response(),
    }
}

/// The routes, for a server bound to `port` (the `Host` check needs it).
pub fn router(running: Running, token: Option<Secret>, port: u16) -> Router {
    let session = token.as_ref().map(|t| Arc::new(access::session_value(t.expose())));
    let state = AppState {
        running,
        token: token.map(Arc::new),
        session,
        port,
        page_policy: Arc::new(headers::page_policy(PAGE)),
        login_policy: Arc::new(headers::page_policy(LOGIN)),
    };
    let protected = Router::new()
        .route("/", get(page))
        .route("/api/status", get(api_status))
        .route("/api/devices", get(api_devices))
        .route("/api/devices/:name/wave", get(wave::api_wave))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/login", get(login_form).post(login).layer(DefaultBodyLimit::max(4096)))
        .merge(protected)
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(middleware::from_fn(deadline))
        .layer(middleware::from_fn(headers::harden))
        .with_state(state)
}

/// Serves the status surface until `shutdown`; returns the bound address once listening.
pub async fn serve(
    running: Running,
    cfg: StatusConfig,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    // Off loopback only with a real token, whoever built the configuration.
    let short = cfg.token.as_ref().is_none_or(|t| t.expose().chars().count() < crate::config::MIN_TOKEN_CHARS);
    if !cfg.bind.ip().is_loopback() && short {
        return Err(std::io::Error::other(format!(
            "refusing to serve {} without a token of at least {} characters",
            cfg.bind,
            crate::config::MIN_TOKEN_CHARS
        )));
    }
    let listener = tokio::net::TcpListener::bind(cfg.bind).await?;
    let addr = listener.local_addr()?;
    let app = router(running, cfg.token, addr.port());
    let limits = server::Limits {
        max_connections: cfg.max_connections,
        header_timeout: Duration::from_secs(cfg.header_timeout_s),
        lifetime: CONNECTION_LIFETIME,
    };
    let task = tokio::spawn(server::run(listener, app, limits, shutdown));
    tracing::info!(%addr, max_connections = limits.max_connections, "status page at http://{addr}/");
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_carries_its_age() {
        let now = Timestamp(1_000_000);
        assert_eq!(age_s(now, Timestamp(997_500)), 2.5);
        assert_eq!(age_s(now, Timestamp(1_000_200)), 0.0, "a device clock ahead is not a negative age");
    }

    #[test]
    fn an_empty_token_admits_nobody() {
        let mut h = HeaderMap::new();
        let session = access::session_value("");
        assert!(!access::authorized(&h, "", &session));
        // `curl -u anyone:` sends "anyone:" with an empty password.
        h.insert(header::AUTHORIZATION, "Basic YW55b25lOg==".parse().unwrap());
        assert!(!access::authorized(&h, "", &session));
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(!access::authorized(&h, "", &session));
        // Nor does the session cookie an empty token would sign.
        h.remove(header::AUTHORIZATION);
        h.insert(header::COOKIE, format!("medgw_session={session}").parse().unwrap());
        assert!(!access::authorized(&h, "", &session));
    }
}
