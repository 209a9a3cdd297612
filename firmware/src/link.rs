//! The node's side of the medgw link: batching, store-and-forward, acknowledgements, time.
//!
//! The protocol is specified in `medgw_protocols::wire::link`; this is its node half:
//! - one batch per estimate cycle (SpO2, pulse rate, temperature), numbered from 0 per boot and
//!   kept in a [`Ring`] until the gateway's cumulative `Ack` covers it;
//! - batches go out in `seq` order, at most one frame per [`NodeLink::poll`] (so a resend after an
//!   outage never stalls the 100 Hz sampling); after `RESEND_MS` without acknowledgement
//!   progress, or after a `Hello`, the node goes back to its oldest unacknowledged batch;
//! - `Hello` at boot (after a lone `0x00` that ends any noise on the line) and whenever the
//!   gateway sends `HelloRequest`;
//! - `TimeRequest` until a `TimeSync` answers it, then every 10 minutes: the clock offset is the
//!   gateway's UTC plus half the round trip (rounded up), minus the uptime (as NTP, RFC 5905 §8, with the
//!   gateway's processing time taken as zero). Batches made before the clock was set carry their
//!   uptime and `CLOCK_NOT_SET`; once the offset is known, the node sends their UTC time instead
//!   (the uptime clock is the same, so the conversion is exact to the offset's error).
//!
//! Acknowledgements of another boot or of batches the node never sent, and time answers to no
//! pending request, are ignored.

use medgw_protocols::mdc::{code, unit, MdcCode};
use medgw_protocols::quality::{AbsentReason, Flags};
use medgw_protocols::wire::link::{self, Feed, FrameAccumulator, LinkObservation, Message, LINK_VERSION, MAX_FRAME};

use crate::identity::Identity;
use crate::ring::Ring;

/// Batches kept for resend: 128 one-second batches, about two minutes of outage, in 5 KiB.
pub const CAPACITY: usize = 128;
/// Without acknowledgement progress for this long, resend from the oldest batch.
pub const RESEND_MS: u64 = 3_000;
/// Time requests: every 5 s until answered, then every 10 minutes.
pub const TIME_RETRY_MS: u64 = 5_000;
pub const TIME_REFRESH_MS: u64 = 600_000;
/// A batch older than this when sent is marked [`Flags::FROM_STORAGE`].
pub const STORAGE_AGE_MS: u64 = 5_000;

/// The metrics of a batch, in slot order: (metric, unit, decimal exponent).
pub const SLOTS: [(MdcCode, MdcCode, i8); 3] = [
    (code::MDC_PULS_OXIM_SAT_O2, unit::MDC_DIM_PERCENT, 0),
    (code::MDC_PULS_OXIM_PULS_RATE, unit::MDC_DIM_BEAT_PER_MIN, 0),
    (code::MDC_TEMP_BODY, unit::MDC_DIM_DEGC, -2),
];

/// One stored value: the mantissa (in the slot's exponent), or absent when `flags` has
/// [`Flags::UNAVAILABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Item {
    pub mantissa: i16,
    pub flags: u32,
}

impl Item {
    pub fn value(mantissa: i16, flags: Flags) -> Item {
        Item { mantissa, flags: flags.0 }
    }

    pub fn absent(flags: Flags) -> Item {
        Item { mantissa: 0, flags: (flags | Flags::UNAVAILABLE).0 }
    }

    pub fn is_absent(&self) -> bool {
        Flags(self.flags).contains(Flags::UNAVAILABLE)
    }
}

/// A batch as stored: 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Batch {
    pub seq: u32,
    /// Uptime (ms) when made.
    pub uptime_ms: u64,
    pub items: [Item; 3],
}

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    pub batches: u32,
    pub dropped: u32,
    pub frames_sent: u32,
    pub resends: u32,
    pub rejected: u32,
    pub acks: u32,
}

/// The node's link state.
#[derive(Debug, Clone)]
pub struct NodeLink {
    identity: Identity,
    ring: Ring<Batch, CAPACITY>,
    next_seq: u32,
    /// The next batch to transmit.
    send_seq: u32,
    /// When acknowledgements last made progress (or the oldest batch was sent).
    last_progress: u64,
    /// UTC minus uptime, once synchronised.
    clock_offset: Option<i64>,
    time_request: Option<u64>,
    next_time_request: u64,
    /// The highest `seq` ever sent: acknowledgements beyond it are refused.
    highest_sent: Option<u32>,
    hello_due: bool,
    booted: bool,
    acc: FrameAccumulator,
    pub stats: LinkStats,
}

impl NodeLink {
    pub fn new(identity: Identity) -> NodeLink {
        NodeLink {
            identity,
            ring: Ring::new(),
            next_seq: 0,
            send_seq: 0,
            last_progress: 0,
            clock_offset: None,
            time_request: None,
            next_time_request: 0,
            highest_sent: None,
            hello_due: true,
            booted: false,
            acc: FrameAccumulator::new(),
            stats: LinkStats::default(),
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Batches waiting for acknowledgement.
    pub fn unacked(&self) -> usize {
        self.ring.len()
    }

    /// UTC minus uptime, once the gateway gave the time.
    pub fn clock_offset(&self) -> Option<i64> {
        self.clock_offset
    }

    fn oldest(&self) -> u32 {
        self.ring.front().map_or(self.next_seq, |b| b.seq)
    }

    /// Stores a batch made at `uptime_ms`.
    pub fn record(&mut self, uptime_ms: u64, items: [Item; 3]) {
        let batch = Batch { seq: self.next_seq, uptime_ms, items };
        if self.ring.push(batch).is_some() {
            self.stats.dropped += 1;
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        self.stats.batches += 1;
    }

    /// Bytes from the gateway.
    pub fn receive(&mut self, bytes: &[u8], uptime_ms: u64) {
        let mut input = bytes;
        loop {
            let msg = match self.acc.feed(input) {
                Feed::Consumed => return,
                Feed::Frame { result, rest, .. } => {
                    input = rest;
                    result.and_then(link::parse_payload)
                }
            };
            match msg {
                Ok(m) => self.on_message(m, uptime_ms),
                Err(_) => self.stats.rejected += 1,
            }
        }
    }

    fn on_message(&mut self, msg: Message, now: u64) {
        match msg {
            Message::Ack { boot_id, seq } if boot_id == self.identity.boot_id => {
                let sent = self.highest_sent.is_some_and(|h| seq <= h);
                if self.ring.front().is_some_and(|b| b.seq <= seq) && sent {
                    self.ring.pop_while(|b| b.seq <= seq);
                    self.last_progress = now;
                    self.stats.acks += 1;
                    if self.send_seq < self.oldest() {
                        self.send_seq = self.oldest();
                    }
                }
            }
            Message::TimeSync { utc_ms, echo_uptime_ms } if self.time_request == Some(echo_uptime_ms) => {
                self.time_request = None;
                let rtt = now.saturating_sub(echo_uptime_ms);
                let offset = utc_ms.saturating_add(rtt.div_ceil(2) as i64).saturating_sub(now as i64);
                self.clock_offset = Some(offset);
                self.next_time_request = now + TIME_REFRESH_MS;
            }
            Message::HelloRequest => self.hello_due = true,
            _ => self.stats.rejected += 1,
        }
    }

    fn rewind(&mut self, now: u64) {
        if self.send_seq != self.oldest() {
            self.stats.resends += 1;
        }
        self.send_seq = self.oldest();
        self.last_progress = now;
    }

    fn observation(&self, batch: &Batch, slot: usize, now: u64) -> Option<LinkObservation> {
        let (metric, unit, exponent) = *SLOTS.get(slot)?;
        let item = batch.items.get(slot)?;
        let mut flags = Flags(item.flags);
        let time_ms = match self.clock_offset {
            Some(off) => (batch.uptime_ms as i64).saturating_add(off),
            None => {
                flags |= Flags::CLOCK_NOT_SET;
                batch.uptime_ms as i64
            }
        };
        if now.saturating_sub(batch.uptime_ms) > STORAGE_AGE_MS {
            flags |= Flags::FROM_STORAGE;
        }
        Some(if item.is_absent() {
            LinkObservation::absent(metric.0, unit.0, AbsentReason::Unavailable, time_ms, flags)
        } else {
            LinkObservation::numeric(metric.0, unit.0, i32::from(item.mantissa), exponent, time_ms, flags)
        })
    }

    /// Writes at most one frame (the boot's leading `0x00` included) into `out`, which must hold
    /// [`MAX_FRAME`] + 1 bytes; returns the number of bytes to send.
    pub fn poll(&mut self, now: u64, out: &mut [u8]) -> usize {
        let mut start = 0;
        if !self.booted {
            self.booted = true;
            if let Some(b) = out.first_mut() {
                *b = 0;
                start = 1;
            }
        }
        let Some(buf) = out.get_mut(start..) else {
            return start;
        };
        let msg = if self.hello_due {
            self.hello_due = false;
            self.rewind(now);
            let mut model = heapless::String::new();
            let _ = model.push_str(self.identity.model.get(..self.identity.model.len().min(link::TEXT_LEN)).unwrap_or(""));
            let mut firmware = heapless::String::new();
            let _ = firmware.push_str(self.identity.firmware.get(..self.identity.firmware.len().min(link::TEXT_LEN)).unwrap_or(""));
            Some(Message::Hello { version: LINK_VERSION, eui64: self.identity.eui64, model, firmware, boot_id: self.identity.boot_id })
        } else if now >= self.next_time_request {
            self.time_request = Some(now);
            self.next_time_request = now + if self.clock_offset.is_some() { TIME_REFRESH_MS } else { TIME_RETRY_MS };
            Some(Message::TimeRequest { uptime_ms: now })
        } else {
            if !self.ring.is_empty() && now.saturating_sub(self.last_progress) >= RESEND_MS {
                self.rewind(now);
            }
            if self.send_seq < self.oldest() {
                self.send_seq = self.oldest();
            }
            let idx = self.send_seq.wrapping_sub(self.oldest()) as usize;
            match self.ring.get(idx).copied() {
                Some(batch) => {
                    if batch.seq == self.oldest() {
                        // The resend timer runs from when the oldest batch went out.
                        self.last_progress = now;
                    }
                    self.send_seq = batch.seq.wrapping_add(1);
                    self.highest_sent = Some(self.highest_sent.map_or(batch.seq, |h| h.max(batch.seq)));
                    let mut items = heapless::Vec::new();
                    for slot in 0..SLOTS.len() {
                        if let Some(o) = self.observation(&batch, slot, now) {
                            let _ = items.push(o);
                        }
                    }
                    Some(Message::Observations { seq: batch.seq, boot_id: self.identity.boot_id, items })
                }
                None => None,
            }
        };
        let Some(msg) = msg else {
            return start;
        };
        match link::encode(&msg, buf) {
            Ok(n) => {
                self.stats.frames_sent += 1;
                start + n
            }
            Err(_) => start,
        }
    }
}

/// Size of the transmit buffer [`NodeLink::poll`] needs.
pub const TX_BUF: usize = MAX_FRAME + 1;
