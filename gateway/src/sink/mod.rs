//! Sinks: where accepted observations go. Today MQTT; the topic contract is in `topics.rs`.

pub mod mqtt;
pub mod topics;
