//! Sinks: where accepted observations go. Today MQTT; the topic contract is in `topics.rs`.
//!
//! What does not depend on the protocol is kept apart, for the MLLP sink to come: which rows go
//! next (`outbox.rs`) and the sets of rows one message carries (`delivery.rs`). A sink adds its
//! framing, its acknowledgement and a sans-IO session in the shape of `mqtt/session.rs`.

pub mod delivery;
pub mod mqtt;
pub mod outbox;
pub mod topics;
