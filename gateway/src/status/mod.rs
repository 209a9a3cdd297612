//! The operator surface: a status page for the ward PC and the phone, a JSON API, health
//! endpoints for supervisors and Prometheus metrics.
//!
//! Served on loopback by default. Bound to any other address it requires a token (bearer, or
//! the password of HTTP basic auth so a browser can prompt for it): the page shows bed-level
//! clinical values. `/healthz` answers without a token so a load balancer can probe it.

mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use medgw_protocols::Timestamp;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{Secret, StatusConfig};
use crate::pipeline::Running;

const PAGE: &str = include_str!("page.html");

#[derive(Clone)]
struct AppState {
    running: Running,
    token: Option<Arc<Secret>>,
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
}

#[derive(Serialize)]
pub struct StatusReport {
    pub gateway: GatewayInfo,
    pub broker: BrokerInfo,
    pub buffer: Option<BufferInfo>,
    pub devices: usize,
    pub devices_connected: usize,
}

#[derive(Serialize)]
pub struct LatestValue {
    pub metric: String,
    pub display: String,
    pub value: Option<String>,
    pub unit: String,
    pub flags: Vec<&'static str>,
    pub time: Timestamp,
}

#[derive(Serialize)]
pub struct DeviceReport {
    pub name: String,
    pub bed: String,
    pub protocol: String,
    pub port: String,
    pub state: crate::source::DeviceState,
    pub last_data_age_s: Option<f64>,
    pub observations: u64,
    pub rejected: u64,
    pub gaps: u64,
    pub reconnects: u64,
    pub latest: Vec<LatestValue>,
}

pub async fn status_report(r: &Running) -> StatusReport {
    let now = Timestamp::now();
    let buffer = r.buffer.stats().await.ok().map(|s| BufferInfo {
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
            published: r.sink.published.load(Ordering::Relaxed),
            delivered: r.sink.delivered.load(Ordering::Relaxed),
            refused: r.sink.refused.load(Ordering::Relaxed),
            reconnects: r.sink.reconnects.load(Ordering::Relaxed),
        },
        buffer,
        devices: r.devices.len(),
        devices_connected: r.devices.iter().filter(|d| d.state() == crate::source::DeviceState::Connected).count(),
    }
}

pub fn device_reports(r: &Running) -> Vec<DeviceReport> {
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
                last_data_age_s: d.last_data.lock().ok().and_then(|g| *g).map(|t| (now.0 - t.0) as f64 / 1000.0),
                observations: d.observations.load(Ordering::Relaxed),
                rejected: d.rejected.load(Ordering::Relaxed),
                gaps: d.gaps.load(Ordering::Relaxed),
                reconnects: d.reconnects.load(Ordering::Relaxed),
                latest,
            }
        })
        .collect()
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], Html(PAGE))
}

async fn api_status(State(s): State<AppState>) -> Json<StatusReport> {
    Json(status_report(&s.running).await)
}

async fn api_devices(State(s): State<AppState>) -> Json<Vec<DeviceReport>> {
    Json(device_reports(&s.running))
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

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    if let Some(bearer) = value.strip_prefix("Bearer ") {
        return same(bearer.trim().as_bytes(), token.as_bytes());
    }
    if let Some(basic) = value.strip_prefix("Basic ") {
        use base64::Engine;
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) {
            if let Some(pos) = decoded.iter().position(|b| *b == b':') {
                return same(&decoded[pos + 1..], token.as_bytes());
            }
        }
    }
    false
}

async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match &s.token {
        Some(t) if !authorized(req.headers(), t.expose()) => {
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"medgw\", charset=\"UTF-8\"")], "token required\n")
                .into_response()
        }
        _ => next.run(req).await,
    }
}

pub fn router(running: Running, token: Option<Secret>) -> Router {
    let state = AppState { running, token: token.map(Arc::new) };
    let protected = Router::new()
        .route("/", get(page))
        .route("/api/status", get(api_status))
        .route("/api/devices", get(api_devices))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new().route("/healthz", get(healthz)).merge(protected).with_state(state)
}

/// Serves the status surface until `shutdown`; returns the bound address once listening.
pub async fn serve(
    running: Running,
    cfg: StatusConfig,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(cfg.bind).await?;
    let addr = listener.local_addr()?;
    let app = router(running, cfg.token);
    let task = tokio::spawn(async move {
        let r = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
        if let Err(e) = r {
            tracing::error!(error = %e, "status server stopped");
        }
    });
    tracing::info!(%addr, "status page at http://{addr}/");
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_by_bearer_or_basic_password() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(!authorized(&h, "s3cret"));
        // "nurse:s3cret"
        h.insert(header::AUTHORIZATION, "Basic bnVyc2U6czNjcmV0".parse().unwrap());
        assert!(authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Basic bnVyc2U6d3Jvbmc=".parse().unwrap());
        assert!(!authorized(&h, "s3cret"));
    }
}
