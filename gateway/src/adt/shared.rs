//! The association state as the normaliser reads it: an immutable snapshot, replaced after
//! every change, with a version number.
//!
//! The receiver (one ADT message at a time, under its lock) is the only writer. Readers are the
//! device tasks, once per observation: they compare the version (one atomic load) and keep
//! their answer while it and the reading's time stay within the answer's span
//! ([`Associations::span_at`]), so a reading costs no lock and no allocation in the common case.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use medgw_protocols::association::{Associations, AuditEvent};

pub struct Shared {
    snapshot: RwLock<Arc<Associations>>,
    version: AtomicU64,
    /// Audit events of every change, for the pipeline to publish (MQTT events, status page).
    audit: tokio::sync::mpsc::UnboundedSender<AuditEvent>,
}

impl Shared {
    /// The shared state, and the receiving end of its audit events.
    pub fn new(state: Associations) -> (Arc<Shared>, tokio::sync::mpsc::UnboundedReceiver<AuditEvent>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Arc::new(Shared { snapshot: RwLock::new(Arc::new(state)), version: AtomicU64::new(1), audit: tx }), rx)
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> Arc<Associations> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the state (after it was persisted) and bumps the version.
    pub fn publish(&self, state: Associations) {
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Hands audit events to the pipeline (which logs and publishes them).
    pub fn audit(&self, events: &[AuditEvent]) {
        for e in events {
            let _ = self.audit.send(e.clone());
        }
    }
}
