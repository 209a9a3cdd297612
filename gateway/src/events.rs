//! Device and gateway events: what lets a receiver tell "no data" from "value unchanged".
//!
//! Each event both logs (tracing, key/value fields, no patient data) and is published on the
//! device's or gateway's `events` topic as JSON (docs/mqtt.md), with the time span it covers.

use medgw_protocols::Timestamp;
use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The port opened (first time or after a reconnect).
    Connected,
    /// The port vanished or failed (USB unplugged, device server gone).
    Disconnected,
    /// No bytes for the silence timeout; `span` is from the last byte to now.
    Silent,
    /// Data flows again after silence or disconnection; `span` is the gap.
    Resumed,
    /// A peer outside the allow list tried to connect to a TCP-server source and was refused.
    ConnectionRefused,
    /// Frames were rejected (bad checksum, truncated, garbage); `count` in `span`.
    Rejected,
    /// The device's sequence numbers jumped: readings lost before the gateway.
    SequenceGap,
    /// The protocol session changed state (associated, released, ...).
    Session,
    /// The bytes do not look like the configured protocol (a wrong protocol or data format, or a
    /// noisy line): the decoder withholds values until it locks on again.
    NoisyLine,
    /// The device told who it is (serial, EUI-64, model) for the first time or differently.
    Identity,
    /// The buffer was full and the oldest observations were deleted (policy drop-oldest).
    BufferDropped,
    /// The buffer is full and devices are not read (policy stop-reading, or a disk so full
    /// that nothing more can be made room for).
    BufferFull,
    /// The buffer found and quarantined damaged data (at start-up or while running).
    BufferQuarantined,
    /// The buffer's file system is full: capacity lowered, what happens to new observations in
    /// `detail`. Once per episode.
    BufferDiskFull,
    /// The space returned after `buffer-disk-full`: the disk reserve is in place again.
    BufferDiskOk,
    /// The gateway started or is stopping.
    Gateway,
    /// A bed's patient association changed (ADT feed; `change` says how: associated,
    /// unassociated, ended, displaced, retracted, updated, merged, ...). Never names the patient.
    Association,
    /// Two sources name different patients for one bed (a configured `patient` and the ADT
    /// feed, or a merge that made one patient of two beds): readings carry no patient.
    AssociationConflict,
    /// A device reports a patient id that is not the ADT patient of its bed: readings carry no
    /// patient until the ids agree (`change` = `mismatch-resolved` then).
    PatientMismatch,
    /// The ADT feed named a location that is not one of this gateway's beds (once per location).
    UnmappedLocation,
    /// An MLLP sink's receiver refused a message for good (AR/CR, or AE after the retries): its
    /// observations are kept in the buffer's dead-letter table (`medgw buffer stats|export`).
    /// `sink`, `control_id` (MSH-10) and `count` (observations) say which; `detail` the ACK's
    /// MSA/ERR text.
    MllpDeadLetter,
    /// An Alarm Manager (an MLLP sink carrying alarms) refused an alarm event (AR/CR) or kept
    /// failing it (AE/CE after the retries): counted, not kept (alarms are not buffered).
    /// `sink`, `control_id` (MSH-10) say which; `detail` the device and the ACK's text.
    MllpAlarmRefused,
}

impl EventKind {
    /// Logged as a warning (the rest at info).
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            EventKind::Disconnected
                | EventKind::Silent
                | EventKind::ConnectionRefused
                | EventKind::SequenceGap
                | EventKind::NoisyLine
                | EventKind::Rejected
                | EventKind::BufferDropped
                | EventKind::BufferFull
                | EventKind::BufferDiskFull
                | EventKind::BufferQuarantined
                | EventKind::AssociationConflict
                | EventKind::PatientMismatch
                | EventKind::MllpDeadLetter
                | EventKind::MllpAlarmRefused
        )
    }
}

/// An event as published.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub kind: EventKind,
    pub time: Timestamp,
    /// The configured device name (absent for gateway events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bed: Option<String>,
    /// Start and end of the period the event covers (a gap, a burst of rejections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// For association events: what changed (the audit event's kind, docs/adt.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<&'static str>,
    /// For sink events: the sink's configured name and the message control id (MSH-10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
    /// Human-readable detail: the error, the reason; never patient data.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Span {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Event {
    pub fn gateway(kind: EventKind, detail: impl Into<String>) -> Event {
        Event {
            kind,
            time: Timestamp::now(),
            device: None,
            bed: None,
            span: None,
            count: None,
            change: None,
            sink: None,
            control_id: None,
            detail: detail.into(),
        }
    }

    pub fn device(kind: EventKind, device: &str, bed: &str, detail: impl Into<String>) -> Event {
        Event {
            kind,
            time: Timestamp::now(),
            device: Some(device.to_string()),
            bed: Some(bed.to_string()),
            span: None,
            count: None,
            change: None,
            sink: None,
            control_id: None,
            detail: detail.into(),
        }
    }

    /// Names the sink and the message (sink events).
    pub fn with_sink(mut self, sink: &str, control_id: &str) -> Event {
        self.sink = Some(sink.to_string());
        self.control_id = Some(control_id.to_string());
        self
    }

    pub fn with_span(mut self, start: Timestamp, end: Timestamp) -> Event {
        self.span = Some(Span { start, end });
        self
    }

    pub fn with_count(mut self, count: u64) -> Event {
        self.count = Some(count);
        self
    }

    /// Logs the event at the level its kind deserves.
    pub fn log(&self) {
        self.log_repeated(0);
    }

    /// Logs the event, saying how many like it were counted but not logged before it
    /// (`crate::log_limit`).
    pub fn log_repeated(&self, suppressed: u64) {
        let device = self.device.as_deref().unwrap_or("-");
        let suppressed = (suppressed > 0).then_some(suppressed);
        match self.kind {
            EventKind::Rejected => {
                tracing::warn!(kind = ?self.kind, device, count = self.count, detail = %self.detail, suppressed, "frames rejected")
            }
            k if k.is_warning() => {
                tracing::warn!(kind = ?self.kind, device, count = self.count, detail = %self.detail, suppressed, "device event")
            }
            _ => tracing::info!(kind = ?self.kind, device, detail = %self.detail, suppressed, "device event"),
        }
    }
}

/// Collects rejections of one device and reports them as one event per window, so a device
/// that streams garbage produces a bounded number of events (with the count), not one each.
#[derive(Debug, Default)]
pub struct RejectionWindow {
    count: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    last_reason: String,
}

impl RejectionWindow {
    pub fn record(&mut self, at: Timestamp, reason: &str) {
        self.count += 1;
        self.first.get_or_insert(at);
        self.last = Some(at);
        reason.clone_into(&mut self.last_reason);
    }

    /// The event for what was recorded since the last call, if anything.
    pub fn take(&mut self, device: &str, bed: &str) -> Option<Event> {
        if self.count == 0 {
            return None;
        }
        let e = Event::device(EventKind::Rejected, device, bed, format!("last reason: {}", self.last_reason))
            .with_count(self.count)
            .with_span(self.first.unwrap_or_default(), self.last.unwrap_or_default());
        *self = RejectionWindow::default();
        Some(e)
    }
}

/// Turns a decoder's noisy-line reports into at most one `noisy-line` event per device per
/// [`NoisyLineLimiter::INTERVAL_MS`]: a line that locks and loses its lock over and over would
/// otherwise report each time. The event's `count` is the reports since the last event.
#[derive(Debug, Default)]
pub struct NoisyLineLimiter {
    last: Option<Timestamp>,
    suppressed: u64,
}

impl NoisyLineLimiter {
    pub const INTERVAL_MS: i64 = 60_000;

    pub fn report(&mut self, now: Timestamp, why: &str, device: &str, bed: &str) -> Option<Event> {
        if self.last.is_some_and(|l| now.0.saturating_sub(l.0) < Self::INTERVAL_MS) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        let count = 1 + std::mem::take(&mut self.suppressed);
        let detail = format!("wrong protocol or noisy line: {why}; values are withheld until the decoder locks on again");
        Some(Event::device(EventKind::NoisyLine, device, bed, detail).with_count(count))
    }
}

#[cfg(test)]
mod noisy_tests {
    use super::*;

    #[test]
    fn noisy_line_events_are_limited_and_counted() {
        let mut l = NoisyLineLimiter::default();
        let e = l.report(Timestamp(0), "x", "oxi", "BED1").unwrap();
        assert_eq!((e.kind, e.count), (EventKind::NoisyLine, Some(1)));
        assert!(l.report(Timestamp(1_000), "x", "oxi", "BED1").is_none());
        assert!(l.report(Timestamp(59_999), "x", "oxi", "BED1").is_none());
        let e = l.report(Timestamp(60_000), "x", "oxi", "BED1").unwrap();
        assert_eq!(e.count, Some(3));
        assert_eq!(serde_json::to_value(&e).unwrap()["kind"], "noisy-line");
    }
}
