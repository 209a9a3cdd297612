//! The canonical JSON form of an alarm event (docs/alarms.md): one self-describing object per
//! event, for logs, `medgw decode` and a future `alarm` MQTT payload. Field names are a
//! contract: add fields, never rename them.
//!
//! ```json
//! {"id":"<alarm uuid>","phase":"start","device":{"key":"...","name":"...","protocol":"..."},
//!  "bed":{"site":"...","unit":"...","room":null,"bed":"..."},"patient":null,
//!  "code":196670,"ref_id":"MDC_EVT_LO","vendor":{"namespace":"masimo","code":"ALARM:0002"},
//!  "source":150456,"kind":"physiological","priority":"high","ihe_priority":"PH",
//!  "device_priority":null,"state":"active","inactivation":"enabled","text":"SpO2 low",
//!  "value":85,"unit":262688,"limits":null,"started":"2026-...Z","time":"2026-...Z",
//!  "end_reason":null}
//! ```
//! `code` and `source` are 0 when unmapped (the vendor code then identifies the alarm);
//! `priority` is null when the device gives none.

use alloc::string::String;

use serde_json::{json, Value as Json};

use crate::alarm::{codes, AlarmEvent};
use crate::observation::DeviceContext;

/// The canonical JSON of one alarm event.
pub fn alarm_json(ev: &AlarmEvent, ctx: &DeviceContext) -> Json {
    let c = &ev.condition;
    json!({
        "id": alloc::format!("{}", ev.id),
        "phase": ev.phase,
        "device": {"key": ctx.key(), "name": ctx.name, "protocol": ctx.protocol},
        "bed": ctx.location,
        "patient": ctx.patient,
        "code": c.code.0,
        "ref_id": codes::ref_id(c.code),
        "vendor": {"namespace": c.vendor.namespace, "code": c.vendor.code},
        "source": c.source.0,
        "kind": c.kind,
        "priority": c.priority,
        "ihe_priority": c.priority.map(|p| p.ihe()),
        "device_priority": c.device_priority,
        "state": c.state,
        "inactivation": c.inactivation,
        "text": c.text,
        "value": c.value,
        "unit": if c.value.is_some() { Some(c.unit.0) } else { None },
        "limits": c.limits,
        "started": alloc::format!("{}", ev.started.rfc3339()),
        "time": alloc::format!("{}", ev.receipt_time.rfc3339()),
        "end_reason": ev.end_reason,
    })
}

/// [`alarm_json`] as text.
pub fn alarm_string(ev: &AlarmEvent, ctx: &DeviceContext) -> String {
    serde_json::to_string(&alarm_json(ev, ctx)).unwrap_or_default()
}
