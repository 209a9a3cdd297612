//! The ADT feed receiver (issue 14; rules in docs/adt.md).
//!
//! Parsing, ACKs and the association rules are sans-IO in `medgw_protocols::{hl7, association}`;
//! this module adds the I/O: the MLLP listener (`listener.rs`), the state persisted beside the
//! buffer (`store.rs`), the message handler that joins them (`receiver.rs`), the state as the
//! normaliser reads it (`shared.rs`), what `medgw run` starts (`service.rs`), the audit events as
//! gateway events (`audit.rs`) and the `medgw adt` commands (`cli.rs`).

pub mod audit;
pub mod cli;
pub mod listener;
pub mod receiver;
pub mod service;
pub mod settings;
pub mod shared;
pub mod store;
pub mod tls;

pub use receiver::{Handled, Receiver};
pub use settings::AdtSettings;
pub use shared::Shared;
