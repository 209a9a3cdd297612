//! `/api/devices/{name}/wave`: the device's last wave segment, for the page's live trace.
//!
//! Polled (once a second by the page) rather than pushed: the page stays plain HTML with a
//! little script, and a trace a second behind is what a ward overview needs. Answers 204 when
//! the device has no published wave (waves off, or none decoded yet), 404 for an unknown device.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::AppState;

pub(super) async fn api_wave(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.running.devices.iter().find(|d| d.name == name) {
        None => (StatusCode::NOT_FOUND, "no such device\n").into_response(),
        Some(d) => match d.wave.get() {
            Some(trace) => Json(trace).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    }
}
