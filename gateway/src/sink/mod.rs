//! Sinks: where accepted observations go. The MQTT broker (`[mqtt]`, the topic contract in
//! `topics.rs`) and any number of HL7 v2 interface engines over MLLP (`[[sink]]`, `mllp/`).
//!
//! What does not depend on the protocol is shared: which rows go next (`outbox.rs`; the live
//! hand-over of committed rows to every sink is the buffer's, `buffer/live.rs`) and the sets of
//! rows one message carries (`delivery.rs`). A sink adds its framing, its
//! acknowledgement and a sans-IO session (`mqtt/session.rs`, `medgw_protocols::hl7::delivery`).
//! The buffer tracks delivery per sink by name: a row leaves when every sink has it.

pub mod delivery;
pub mod durable_waves;
pub mod mllp;
pub mod mqtt;
pub mod outbox;
pub mod topics;

/// The name the buffer knows the MQTT sink by (a `[[sink]]` may not take it).
pub const MQTT_SINK: &str = "mqtt";
