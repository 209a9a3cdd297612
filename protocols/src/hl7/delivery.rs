//! Delivering HL7 v2 messages to an interface engine over MLLP, acknowledged (issue 15).
//!
//! A sans-IO session: it never touches a socket or a clock. The task that owns the connection
//! feeds it what happened (`offer`, `connected`, `connect_failed`, `disconnected`,
//! `handle_inbound`, `poll` with the time) and carries out the [`Action`]s it returns.
//!
//! ```text
//!   offer(ER7 message, tag) ──▶ queue ──▶ window (≤ max_in_flight) ──Write──▶ receiver
//!                                            ▲  │                              │
//!                 AE/CE: retry after back-off │  │ AA (CA when final) ◀────────┘ ACK, MSA-2 = MSH-10
//!                 timeout / disconnect: Close,   ├─▶ Acked(tag)
//!                 reconnect, resend same bytes   └─▶ DeadLettered(tag, MSA/ERR text)  AR, CR, AE × n
//! ```
//! Acknowledgement rules (HL7 v2.5 §2.9.2 original mode, §2.9.3 enhanced mode; IHE PCD-01
//! sends MSH-15 `NE`, MSH-16 `AL`, i.e. one application ACK):
//! - `AA` acknowledges. `AR` (and the commit reject `CR`) dead-letters at once with the ACK's
//!   MSA-3 and ERR text: the receiver will refuse the same message again.
//! - `AE` (and the commit error `CE`) is retried after a back-off, with the same bytes; after
//!   `ae_retries` retries the next `AE` dead-letters.
//! - `CA`, the commit accept, means the receiver has taken the message into safe storage and
//!   releases the sender from resending it (§2.9.3). In enhanced mode, when the message asks
//!   for an application ACK (MSH-16 `AL`), the session waits for that too before it reports
//!   the message delivered; otherwise `CA` acknowledges.
//! - An ACK whose MSA-2 names no message awaiting one is ignored (reported, never acted on).
//! - No ACK within `ack_timeout_ms`: the connection is closed and every message in flight is
//!   resent on the next connection, unchanged (same MSH-10), so the receiver can deduplicate.
//!   Timeouts and lost connections never dead-letter: the receiver being away loses nothing.
//!
//! An application ACK that itself asks for a commit ACK (its MSH-15 `AL`) is answered with `CA`.
//! With `max_in_flight = 1` messages are delivered strictly in the order offered: the next is
//! sent only when the one before is acknowledged or dead-lettered.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::message::Message;
use super::Hl7Error;
use crate::encode::mllp::{self, Deframer, Frame};
use crate::time::Timestamp;

/// How the receiver acknowledges (HL7 v2.5 §2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// One application ACK per message: AA, AE or AR.
    Original,
    /// A commit ACK (CA, CE, CR), then an application ACK if the message asks for one.
    Enhanced,
}

/// The session's settings; the gateway's `[[sink]] kind = "mllp"` table maps onto it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    pub ack_mode: AckMode,
    /// The longest to wait for an ACK before the connection is closed and the message resent.
    pub ack_timeout_ms: u64,
    /// Messages sent and not yet resolved at most (1: strict order).
    pub max_in_flight: usize,
    /// Back-off before a reconnect or an AE retry: doubles from min to max.
    pub retry_backoff_min_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// Retries after AE/CE before the message is dead-lettered.
    pub ae_retries: u32,
    /// Largest inbound message (an ACK) accepted.
    pub max_ack_bytes: usize,
}

impl Default for DeliveryConfig {
    fn default() -> DeliveryConfig {
        DeliveryConfig {
            ack_mode: AckMode::Original,
            ack_timeout_ms: 30_000,
            max_in_flight: 1,
            retry_backoff_min_ms: 1_000,
            retry_backoff_max_ms: 60_000,
            ae_retries: 3,
            max_ack_bytes: 1 << 20,
        }
    }
}

/// MSA-1 (HL7 table 0008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    AA,
    AE,
    AR,
    CA,
    CE,
    CR,
}

impl AckKind {
    pub fn parse(s: &str) -> Option<AckKind> {
        Some(match s {
            "AA" => AckKind::AA,
            "AE" => AckKind::AE,
            "AR" => AckKind::AR,
            "CA" => AckKind::CA,
            "CE" => AckKind::CE,
            "CR" => AckKind::CR,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AckKind::AA => "AA",
            AckKind::AE => "AE",
            AckKind::AR => "AR",
            AckKind::CA => "CA",
            AckKind::CE => "CE",
            AckKind::CR => "CR",
        }
    }
}

/// What an inbound acknowledgement says, read with the HL7 parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckReport {
    pub kind: AckKind,
    /// MSA-2: the MSH-10 of the message acknowledged.
    pub control_id: String,
    /// MSA-3 and each ERR segment's code and texts, joined with "; " (empty when none).
    pub text: String,
    /// The ACK's own MSH-10 and MSH-15, to answer an application ACK that wants a commit ACK.
    own_control_id: String,
    wants_commit_ack: bool,
    /// MSH-3..6 and MSH-12 of the ACK, echoed swapped in a commit ACK.
    header: [String; 5],
}

/// Reads an ACK: any message with an MSA segment (an application ACK in enhanced mode may be of
/// another type than `ACK`).
pub fn read_ack(text: &str) -> Result<AckReport, Hl7Error> {
    let m = Message::parse(text)?;
    let msh = m.segment("MSH").ok_or(Hl7Error::MissingMsh)?;
    let msa = m.segment("MSA").ok_or(Hl7Error::MissingSegment { segment: "MSA" })?;
    let kind =
        AckKind::parse(msa.field(1).raw()).ok_or(Hl7Error::BadValue { segment: "MSA", field: 1, what: "not an acknowledgment code" })?;
    let unescaped = |f: super::message::Field<'_>| f.text().unwrap_or_else(|_| String::from(f.raw()));
    let control_id = unescaped(msa.field(2));
    let mut parts: Vec<String> = Vec::new();
    let msa3 = unescaped(msa.field(3));
    if !msa3.is_empty() {
        parts.push(msa3);
    }
    for err in m.segments().iter().filter(|s| s.id() == "ERR") {
        // v2.5+: ERR-3 code^text^system, ERR-7 diagnostic, ERR-8 user message, ERR-2 location;
        // v2.3/2.4: ERR-1 segment^seq^field^code&text&system.
        let mut p = String::new();
        let code = err.field(3);
        if !code.is_empty() {
            p.push_str(&unescaped(code.component(1)));
            let t = unescaped(code.component(2));
            if !t.is_empty() {
                p.push(' ');
                p.push_str(&t);
            }
        } else if !err.field(1).is_empty() {
            let eld = err.field(1);
            let code = eld.component(4);
            let (seg, field) = (unescaped(eld.component(1)), unescaped(eld.component(3)));
            p.push_str(&unescaped(code.subcomponent(1)));
            let t = unescaped(code.subcomponent(2));
            if !t.is_empty() {
                p.push(' ');
                p.push_str(&t);
            }
            if !seg.is_empty() {
                p.push_str(&format!(" at {seg}-{field}"));
            }
        }
        let loc = err.field(2);
        if !loc.is_empty() {
            p.push_str(&format!(" at {}-{}", unescaped(loc.component(1)), unescaped(loc.component(3))));
        }
        for n in [7, 8] {
            let t = unescaped(err.field(n));
            if !t.is_empty() {
                p.push_str(": ");
                p.push_str(&t);
            }
        }
        let p = String::from(p.trim());
        if !p.is_empty() {
            parts.push(p);
        }
    }
    let field = |n| unescaped(msh.field(n));
    Ok(AckReport {
        kind,
        control_id,
        text: parts.join("; "),
        own_control_id: field(10),
        wants_commit_ack: msh.field(15).raw() == "AL",
        header: [field(3), field(4), field(5), field(6), field(12)],
    })
}

/// Why a message could not be offered. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("not an HL7 message: {0}")]
    NotHl7(Hl7Error),
    #[error("MSH-10 (message control id) is empty: an ACK could not name the message")]
    NoControlId,
    #[error("message control id {0:?} is already queued or in flight")]
    DuplicateControlId(String),
    #[error("the message contains an MLLP framing byte (0x0B or 0x1C)")]
    FramingByte,
}

/// Why the session closed its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// No ACK for this message within the ACK timeout.
    AckTimeout { control_id: String },
}

/// Why an inbound frame was not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// An ACK whose MSA-2 names no message awaiting one (late, duplicate or foreign).
    UnknownControlId { control_id: String, kind: AckKind },
    /// A frame that is not a readable ACK, or bytes outside MLLP framing.
    Unreadable { why: String },
}

/// A message the receiver refused for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<T> {
    pub tag: T,
    pub control_id: String,
    /// The last ACK code: AR, CR, or AE/CE when the retries were used up.
    pub kind: AckKind,
    /// "AR: <MSA-3 and ERR texts>", what an operator reads in the dead-letter table.
    pub reason: String,
    /// Times the message was written.
    pub sends: u32,
}

/// What the owner of the connection must do, or learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<T> {
    /// Open a connection; answer with `connected` or `connect_failed`.
    Connect,
    /// Write these bytes (MLLP-framed) on the open connection.
    Write(Vec<u8>),
    /// Close the connection; the session reconnects by itself (a later `Connect`).
    Close(CloseReason),
    /// The receiver accepted the message: its rows may leave the buffer.
    Acked {
        tag: T,
        control_id: String,
        sends: u32,
    },
    DeadLettered(DeadLetter<T>),
    /// AE/CE: the message will be written again at `at` (retry number `retry`).
    RetryScheduled {
        control_id: String,
        retry: u32,
        at: Timestamp,
        reason: String,
    },
    Ignored(Ignored),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not written on the current connection yet.
    Unsent,
    /// Written; the ACK is due by the deadline.
    AwaitingAck { deadline: Timestamp },
    /// Enhanced mode: committed (CA); the application ACK is due by the deadline.
    AwaitingApplication { deadline: Timestamp },
    /// AE/CE: to be written again at this time.
    RetryAt(Timestamp),
}

#[derive(Debug)]
struct Entry<T> {
    control_id: String,
    framed: Vec<u8>,
    tag: T,
    wants_application_ack: bool,
    stage: Stage,
    sends: u32,
    errors: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No connection; connect when there is something to send and the time has come.
    Down {
        not_before: Timestamp,
    },
    Connecting,
    Up,
}

/// The delivery session. `T` is what the caller gets back with each outcome (buffer row ids).
#[derive(Debug)]
pub struct DeliverySession<T> {
    config: DeliveryConfig,
    queue: VecDeque<Entry<T>>,
    /// Messages holding an in-flight slot, in the order offered.
    window: VecDeque<Entry<T>>,
    link: Link,
    deframer: Deframer,
    /// Consecutive failures (lost connections, timeouts) since the last ACK: the back-off step.
    failures: u32,
    /// Counter for the control ids of the commit ACKs the session sends.
    commit_acks: u64,
}

impl<T> DeliverySession<T> {
    pub fn new(mut config: DeliveryConfig) -> DeliverySession<T> {
        config.max_in_flight = config.max_in_flight.max(1);
        config.retry_backoff_max_ms = config.retry_backoff_max_ms.max(config.retry_backoff_min_ms);
        let deframer = Deframer::new(config.max_ack_bytes);
        DeliverySession {
            config,
            queue: VecDeque::new(),
            window: VecDeque::new(),
            link: Link::Down { not_before: Timestamp(i64::MIN) },
            deframer,
            failures: 0,
            commit_acks: 0,
        }
    }

    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// Messages holding an in-flight slot (sent, awaiting an ACK or a retry).
    pub fn in_flight(&self) -> usize {
        self.window.len()
    }

    /// Messages offered and not yet sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn is_connected(&self) -> bool {
        self.link == Link::Up
    }

    /// Whether nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.window.is_empty()
    }

    /// Queues a message (ER7 text, segments ended by CR) for delivery; its MSH-10 names it in
    /// the ACK, its MSH-16 says whether an application ACK follows a commit ACK.
    pub fn offer(&mut self, message: Vec<u8>, tag: T, now: Timestamp, out: &mut Vec<Action<T>>) -> Result<(), OfferError> {
        if message.iter().any(|&b| b == mllp::START_BLOCK || b == mllp::END_BLOCK) {
            return Err(OfferError::FramingByte);
        }
        let text = super::message::decode_text(&message).map_err(OfferError::NotHl7)?;
        let m = Message::parse(&text).map_err(OfferError::NotHl7)?;
        let msh = m.segment("MSH").ok_or(OfferError::NotHl7(Hl7Error::MissingMsh))?;
        let control_id = msh.field(10).text().unwrap_or_else(|_| String::from(msh.field(10).raw()));
        if control_id.is_empty() {
            return Err(OfferError::NoControlId);
        }
        if self.window.iter().chain(self.queue.iter()).any(|e| e.control_id == control_id) {
            return Err(OfferError::DuplicateControlId(control_id));
        }
        let wants_application_ack = msh.field(16).raw() == "AL";
        self.queue.push_back(Entry {
            control_id,
            framed: mllp::frame(&message),
            tag,
            wants_application_ack,
            stage: Stage::Unsent,
            sends: 0,
            errors: 0,
        });
        self.pump(now, out);
        Ok(())
    }

    /// The connection asked for with [`Action::Connect`] is open.
    pub fn connected(&mut self, now: Timestamp, out: &mut Vec<Action<T>>) {
        self.link = Link::Up;
        self.deframer = Deframer::new(self.config.max_ack_bytes);
        self.pump(now, out);
    }

    /// The connection could not be opened: try again after the back-off.
    pub fn connect_failed(&mut self, now: Timestamp, out: &mut Vec<Action<T>>) {
        self.lose_link(now);
        self.pump(now, out);
    }

    /// The connection was lost (closed by the peer, a read or write failed). Messages in
    /// flight are resent on the next connection. Does nothing if the session is not connected.
    pub fn disconnected(&mut self, now: Timestamp, out: &mut Vec<Action<T>>) {
        if matches!(self.link, Link::Down { .. }) {
            return;
        }
        self.lose_link(now);
        self.pump(now, out);
    }

    /// Bytes read from the connection.
    pub fn handle_inbound(&mut self, bytes: &[u8], now: Timestamp, out: &mut Vec<Action<T>>) {
        if self.link != Link::Up {
            return;
        }
        let mut frames = Vec::new();
        self.deframer.feed(bytes, &mut frames);
        for f in frames {
            match f {
                Frame::Message(m) => self.handle_ack(&m, now, out),
                Frame::Rejected(e) => out.push(Action::Ignored(Ignored::Unreadable { why: format!("{e}") })),
            }
            if self.link != Link::Up {
                break;
            }
        }
        self.pump(now, out);
    }

    /// Timers: ACK time-outs, retries after AE, reconnects.
    pub fn poll(&mut self, now: Timestamp, out: &mut Vec<Action<T>>) {
        if self.link == Link::Up {
            let overdue = self.window.iter().find(|e| match e.stage {
                Stage::AwaitingAck { deadline } | Stage::AwaitingApplication { deadline } => deadline <= now,
                _ => false,
            });
            if let Some(e) = overdue {
                let control_id = e.control_id.clone();
                self.lose_link(now);
                out.push(Action::Close(CloseReason::AckTimeout { control_id }));
            }
        }
        self.pump(now, out);
    }

    /// When `poll` has something to do next; `None` while waiting only for the peer.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        match self.link {
            Link::Up => self
                .window
                .iter()
                .filter_map(|e| match e.stage {
                    Stage::AwaitingAck { deadline } | Stage::AwaitingApplication { deadline } => Some(deadline),
                    Stage::RetryAt(t) => Some(t),
                    Stage::Unsent => None,
                })
                .min(),
            Link::Down { not_before } if !self.is_idle() => Some(not_before),
            _ => None,
        }
    }

    fn backoff(&self, step: u32) -> u64 {
        let min = self.config.retry_backoff_min_ms;
        let factor = 1u64.checked_shl(step.saturating_sub(1).min(62)).unwrap_or(u64::MAX);
        min.saturating_mul(factor).min(self.config.retry_backoff_max_ms)
    }

    fn lose_link(&mut self, now: Timestamp) {
        self.failures = self.failures.saturating_add(1);
        let wait = self.backoff(self.failures);
        self.link = Link::Down { not_before: Timestamp(now.0.saturating_add(wait as i64)) };
        for e in &mut self.window {
            if matches!(e.stage, Stage::AwaitingAck { .. } | Stage::AwaitingApplication { .. }) {
                e.stage = Stage::Unsent;
            }
        }
    }

    /// Fills the window, writes what is due, asks for a connection when needed.
    fn pump(&mut self, now: Timestamp, out: &mut Vec<Action<T>>) {
        while self.window.len() < self.config.max_in_flight {
            match self.queue.pop_front() {
                Some(e) => self.window.push_back(e),
                None => break,
            }
        }
        match self.link {
            Link::Down { not_before } if !self.window.is_empty() && not_before <= now => {
                self.link = Link::Connecting;
                out.push(Action::Connect);
            }
            Link::Up => {
                let deadline = Timestamp(now.0.saturating_add(self.config.ack_timeout_ms as i64));
                for e in &mut self.window {
                    let due = match e.stage {
                        Stage::Unsent => true,
                        Stage::RetryAt(t) => t <= now,
                        _ => false,
                    };
                    if due {
                        e.stage = Stage::AwaitingAck { deadline };
                        e.sends += 1;
                        out.push(Action::Write(e.framed.clone()));
                    }
                }
            }
            _ => {}
        }
    }

    fn handle_ack(&mut self, frame: &[u8], now: Timestamp, out: &mut Vec<Action<T>>) {
        let report = match super::message::decode_text(frame).and_then(|t| read_ack(&t)) {
            Ok(r) => r,
            Err(e) => {
                out.push(Action::Ignored(Ignored::Unreadable { why: format!("{e}") }));
                return;
            }
        };
        if report.wants_commit_ack && matches!(report.kind, AckKind::AA | AckKind::AE | AckKind::AR) {
            let ack = self.commit_ack(&report, now);
            out.push(Action::Write(mllp::frame(ack.as_bytes())));
        }
        let awaiting = self.window.iter().position(|e| {
            e.control_id == report.control_id && matches!(e.stage, Stage::AwaitingAck { .. } | Stage::AwaitingApplication { .. })
        });
        let Some(i) = awaiting else {
            out.push(Action::Ignored(Ignored::UnknownControlId { control_id: report.control_id, kind: report.kind }));
            return;
        };
        // An answer came: the link works, so the next lost connection starts the back-off anew.
        self.failures = 0;
        let enhanced = self.config.ack_mode == AckMode::Enhanced;
        match report.kind {
            AckKind::CA if enhanced && self.window[i].wants_application_ack => {
                let deadline = Timestamp(now.0.saturating_add(self.config.ack_timeout_ms as i64));
                self.window[i].stage = Stage::AwaitingApplication { deadline };
            }
            AckKind::AA | AckKind::CA => {
                if let Some(e) = self.window.remove(i) {
                    out.push(Action::Acked { tag: e.tag, control_id: e.control_id, sends: e.sends });
                }
            }
            AckKind::AR | AckKind::CR => self.dead_letter(i, report.kind, &report.text, out),
            AckKind::AE | AckKind::CE => {
                let e = &mut self.window[i];
                e.errors += 1;
                if e.errors > self.config.ae_retries {
                    self.dead_letter(i, report.kind, &report.text, out);
                } else {
                    let retry = e.errors;
                    let at = Timestamp(now.0.saturating_add(self.backoff(retry) as i64));
                    self.window[i].stage = Stage::RetryAt(at);
                    out.push(Action::RetryScheduled {
                        control_id: report.control_id,
                        retry,
                        at,
                        reason: reason(report.kind, &report.text),
                    });
                }
            }
        }
    }

    fn dead_letter(&mut self, i: usize, kind: AckKind, text: &str, out: &mut Vec<Action<T>>) {
        if let Some(e) = self.window.remove(i) {
            out.push(Action::DeadLettered(DeadLetter {
                tag: e.tag,
                control_id: e.control_id,
                kind,
                reason: reason(kind, text),
                sends: e.sends,
            }));
        }
    }

    /// A commit accept for an application ACK that asked for one (its MSH-15 `AL`).
    fn commit_ack(&mut self, r: &AckReport, now: Timestamp) -> String {
        self.commit_acks += 1;
        let esc = |s: &str| {
            let mut o = String::new();
            super::message::escape_into(&mut o, s, &super::Delimiters::default());
            o
        };
        let [app, fac, rapp, rfac, version] = &r.header;
        let version = if version.is_empty() { "2.6" } else { version.as_str() };
        format!(
            "MSH|^~\\&|{}|{}|{}|{}|{}||ACK|{}|P|{}\rMSA|CA|{}\r",
            esc(rapp),
            esc(rfac),
            esc(app),
            esc(fac),
            now.hl7(),
            esc(&format!("CA{}", self.commit_acks)),
            esc(version),
            esc(&r.own_control_id),
        )
    }
}

fn reason(kind: AckKind, text: &str) -> String {
    if text.is_empty() {
        format!("{} (no reason given)", kind.as_str())
    } else {
        format!("{}: {text}", kind.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v25_and_v23_error_texts() {
        let r = read_ack("MSH|^~\\&|EHR|HOSP|MEDGW|ICU|20261125101501+0000||ACK^R01^ACK|A1|P|2.6\rMSA|AR|M1\rERR||PID^1^3|204^Unknown key identifier^HL70357|E||||Patient not found\r").unwrap();
        assert_eq!((r.kind, r.control_id.as_str()), (AckKind::AR, "M1"));
        assert_eq!(r.text, "204 Unknown key identifier at PID-3: Patient not found");
        let r = read_ack("MSH|^~\\&|EHR|HOSP|||x||ACK|A2|P|2.3\rMSA|AE|M2|Try later\rERR|OBX^1^5^207&Application internal error&HL70357\r")
            .unwrap();
        assert_eq!(r.text, "Try later; 207 Application internal error at OBX-5");
        assert!(read_ack("MSH|^~\\&|EHR\rMSA|XX|M3\r").is_err());
        assert!(read_ack("MSH|^~\\&|EHR\r").is_err());
    }
}
