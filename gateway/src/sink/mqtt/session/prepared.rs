//! Observation messages encoded ahead of the in-flight window.
//!
//! With a small window (Mosquitto's default Receive Maximum is 20) the sink spends most of a
//! round waiting for PUBACKs, and when they come it used to encode the next messages before it
//! could write them: the broker, on the other core, waited for that encoding on every turn of
//! the window. So while the window is full the session encodes up to one window's worth of
//! the next messages here, in time it would otherwise sleep, and a PUBACK is answered by a
//! write at once (issue 20).
//!
//! A prepared message's rows are taken from the outbox, so the outbox counts them as in flight:
//! a backlog read does not offer them twice, and a lost connection (which clears both) sends
//! them again from the buffer. Order is kept: prepared messages go before anything taken from
//! the outbox later.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use medgw_protocols::encode::hl7v2::{self, SetLimits};
use medgw_protocols::observation::{DeviceContext, Observation};

use super::{SessionConfig, MAX_SET_ROWS};
use crate::buffer::Entry;
use crate::config::PayloadFormat;
use crate::sink::delivery::{Delivery, RowSet};
use crate::sink::mqtt::{encode, encode_hl7_set};
use crate::sink::outbox::Outbox;
use crate::sink::topics::Topics;

/// One observation message, encoded, with the rows it carries.
pub(super) struct Prepared {
    pub topic: String,
    pub payload: Bytes,
    pub delivery: Delivery,
}

/// Takes rows from the outbox and encodes them into messages, now or ahead of time.
pub(super) struct Encoder {
    /// PCD-01 observation sets ([`hl7v2::SetCursor`]): with limits, HL7 v2 groups rows.
    group: Option<SetLimits>,
    topic_cache: TopicCache,
    payload_hint: usize,
    ready: VecDeque<Prepared>,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder { group: None, topic_cache: TopicCache::default(), payload_hint: 512, ready: VecDeque::new() }
    }
}

impl Encoder {
    pub fn group_rows(&mut self, limits: SetLimits) {
        self.group = Some(limits);
    }

    /// The next message to publish: one encoded ahead, else the next rows of the outbox.
    pub fn next(&mut self, outbox: &mut Outbox, cfg: &SessionConfig) -> Option<Prepared> {
        self.ready.pop_front().or_else(|| self.encode_next(outbox, cfg))
    }

    /// Encodes messages ahead until `up_to` are ready or the outbox has no more rows.
    pub fn prepare_ahead(&mut self, outbox: &mut Outbox, cfg: &SessionConfig, up_to: usize) {
        while self.ready.len() < up_to {
            match self.encode_next(outbox, cfg) {
                Some(p) => self.ready.push_back(p),
                None => break,
            }
        }
    }

    /// Messages encoded ahead and not yet published.
    pub fn ready(&self) -> usize {
        self.ready.len()
    }

    /// The connection is gone: the outbox forgets what it handed out, so must this.
    pub fn forget(&mut self) {
        self.ready.clear();
    }

    fn encode_next(&mut self, outbox: &mut Outbox, cfg: &SessionConfig) -> Option<Prepared> {
        let first = outbox.next_entry()?;
        let mut more: Vec<Entry> = Vec::new();
        if let (Some(limits), PayloadFormat::Hl7v2) = (self.group, cfg.format) {
            let mut cursor = hl7v2::SetCursor::start(&first.observation, limits);
            while more.len() + 1 < MAX_SET_ROWS {
                let set = std::iter::once(&first.observation).chain(more.iter().map(|e| &e.observation));
                match outbox.next_if(|e| cursor.admit(set, &e.observation)) {
                    Some(e) => more.push(e),
                    None => break,
                }
            }
        }
        let (topic, device) = self.topic_cache.get(&cfg.topics, &first.observation.context);
        let rows = if more.is_empty() {
            RowSet::One(first.rowid)
        } else {
            RowSet::Many(std::iter::once(first.rowid).chain(more.iter().map(|e| e.rowid)).collect())
        };
        let receipt = more.iter().map(|e| e.observation.reading.receipt_time.0).fold(first.observation.reading.receipt_time.0, i64::min);
        let mut payload = Vec::with_capacity(self.payload_hint);
        if more.is_empty() {
            encode(&first.observation, cfg.format, &cfg.nomenclature, &mut payload);
        } else {
            // Only HL7 v2 groups (checked above).
            let set: Vec<&Observation> = std::iter::once(&first.observation).chain(more.iter().map(|e| &e.observation)).collect();
            encode_hl7_set(&set, &cfg.nomenclature, &mut payload);
        }
        self.payload_hint = self.payload_hint.max(payload.len() + 64);
        Some(Prepared { topic, payload: Bytes::from(payload), delivery: Delivery { rows, receipt, device } })
    }
}

/// The observation topic and the shared device name of each device, so that publishing does
/// not format a topic per message (a measurable share of the sink's time at full speed).
#[derive(Default)]
struct TopicCache {
    /// Device name → (bed, topic, name). The bed is checked because buffered observations
    /// from before a configuration change may carry another bed for the same device name.
    by_device: crate::int_hash::IntMap<String, (String, String, Arc<str>)>,
}

impl TopicCache {
    fn get(&mut self, topics: &Topics, ctx: &DeviceContext) -> (String, Arc<str>) {
        match self.by_device.get(ctx.name.as_str()) {
            Some((bed, topic, name)) if *bed == ctx.location.bed => (topic.clone(), name.clone()),
            _ => {
                let (topic, name) = (topics.observations(ctx), Arc::<str>::from(ctx.name.as_str()));
                // Bounded: one entry per configured device, plus renamed ones from the backlog.
                if self.by_device.len() >= 4096 {
                    self.by_device.clear();
                }
                self.by_device.insert(ctx.name.clone(), (ctx.location.bed.clone(), topic.clone(), name.clone()));
                (topic, name)
            }
        }
    }
}
