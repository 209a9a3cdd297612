//! The MEDIBUS session (`medibus`): the gateway's side of the request/response protocol.
//!
//! ```text
//!  start ──ICC──▶ [initialising] ──SOH Q──▶ device id request ──▶ [identifying]
//!                       ▲                                              │ SOH R … (identity)
//!                       │ timeout × 3, NAK, STOP                       ▼
//!                       └──────────────────────────────────────── [active]
//!                                   every poll period: request 0x24 (measured data CP1),
//!                                   and on its answer 0x27 (current alarms CP1)
//!                                   idle for KEEPALIVE_MS: NOP
//! ```
//!
//! - One command is outstanding at a time. A missing answer is retried after
//!   [`RESPONSE_TIMEOUT_MS`]; after [`MAX_TRIES`] tries the session is re-initialised with ICC
//!   (and ICC is repeated every timeout until the device answers). A response with a bad
//!   checksum is retried at once.
//! - Each side must answer every command (MEDIBUS "Responding to Control Commands and unknown
//!   Commands"): a command from the device is answered by echoing its code (`SOH code cs CR`),
//!   an unknown one included (a device-identification request from the device gets the empty
//!   echo, the answer to a command one does not serve that the mdrepo driver attributes to the
//!   MEDIBUS FAQ), and a
//!   corrupt one with `SOH NAK cs CR` (the answer the mdrepo MEDIBUS driver gives). A device ICC restarts the session (identification follows); a
//!   device STOP ends it, and ICC is tried again after [`RESTART_DELAY_MS`].
//! - A NAK in answer to our command means the device has no session for us: re-initialise.
//! - `listen_only`: nothing is ever sent; measured-data and identification responses that
//!   another system's requests produced are decoded (a Y-cable on the device's TX line).
//!
//! The timing values are not from the MEDIBUS document, whose body was not read (only its
//! table of contents): [`RESPONSE_TIMEOUT_MS`] and [`KEEPALIVE_MS`] are \[UNCONFIRMED\] choices.
//! The NOP period follows an open MEDIBUS client that sends NOP every 2 s when it has nothing
//! else to send.
//!
//! Measured data carries no time and no sequence number: `device_time` and `seq` are `None`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::alarms::alarm_records;
use super::data::{code_name, lookup, parse_device_id, records, Reading};
use super::frame::{cmd, Kind, Message, NAK};
use super::framer::{Framer, FramerEvent};
use crate::alarm::{AlarmCondition, AlarmKind, AlarmReport, ReportScope};
use crate::decode::{push_event, Decoder, DecoderOptions, Event};
use crate::error::Error;
use crate::mdc::MdcCode;
use crate::observation::VendorCode;
use crate::observation::{AbsentReason, DeviceIdentity, Flags, Measurement};
use crate::time::Timestamp;

/// Longest message kept (a codepage-1 response with every code is well under 1 KiB).
pub const MAX_MESSAGE: usize = 1024;
/// How long to wait for an answer before sending the command again \[UNCONFIRMED\].
pub const RESPONSE_TIMEOUT_MS: i64 = 3000;
/// Tries of one command before the session is re-initialised.
pub const MAX_TRIES: u8 = 3;
/// Send NOP when nothing was sent for this long [UNCONFIRMED; an open client uses 2 s].
pub const KEEPALIVE_MS: i64 = 2000;
/// After the device stopped the session, wait this long before ICC.
pub const RESTART_DELAY_MS: i64 = 1000;

/// The manufacturer published with the identity.
pub const MANUFACTURER: &str = "Dräger";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `start` was not called yet.
    Idle,
    /// ICC sent, waiting for its echo.
    Initialising,
    /// Device identification requested.
    Identifying,
    Active,
    /// The device stopped the session; ICC again at the given time.
    Stopped(Timestamp),
    /// `listen_only`: decode, never send.
    Listening,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Initialising => "initialising",
            Phase::Identifying => "identifying",
            Phase::Active => "active",
            Phase::Stopped(_) => "stopped",
            Phase::Listening => "listening",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    code: u8,
    sent_at: Timestamp,
    tries: u8,
}

/// The session state: everything but the framer, so that messages are handled while the framer
/// still lends its buffer.
#[derive(Debug)]
struct Session {
    poll_period: i64,
    listen_only: bool,
    phase: Phase,
    pending: Option<Pending>,
    next_poll: Timestamp,
    last_tx: Timestamp,
}

/// The MEDIBUS decoder and session state machine.
#[derive(Debug)]
pub struct MedibusDecoder {
    framer: Framer<MAX_MESSAGE>,
    session: Session,
}

/// Builds `message` on the wire.
fn wire(m: Message<'_>) -> Vec<u8> {
    let mut v = alloc::vec![0u8; m.wire_len()];
    let n = m.emit(&mut v).unwrap_or(0);
    v.truncate(n);
    v
}

/// etCO2 records of codepage 1, most preferred first: mmHg (the unit PCD-01 feeds and the FHIR
/// output use), kPa, %. A Dräger device sends the one reading in each unit it displays.
const ETCO2_CODES: [u8; 3] = [0xE6, 0xE3, 0xDB];

/// The measurements of a measured-data (codepage 1) response. A record whose value does not
/// parse is rejected on its own; the others are published. etCO2 sent in several units is one
/// reading, so only the most preferred unit is published ([`ETCO2_CODES`]): two observations of
/// one reading would count twice in a chart or a trend.
pub fn measurements(data: &[u8], offset: u64, out: &mut Vec<Event>) {
    let recs = match records(data) {
        Ok(r) => r,
        Err(error) => return out.push(Event::Rejected { offset, error }),
    };
    // The first etCO2 code (in preference order) that the response holds.
    let etco2 = ETCO2_CODES.iter().copied().find(|c| recs.clone().any(|r| matches!(r, Ok((code, _)) if code == *c)));
    for rec in recs {
        let (code, raw) = match rec {
            Ok(r) => r,
            Err(error) => {
                out.push(Event::Rejected { offset, error });
                continue;
            }
        };
        if ETCO2_CODES.contains(&code) && Some(code) != etco2 {
            continue;
        }
        let def = lookup(code);
        let m = match super::data::parse_value(raw) {
            Ok(Reading::Number(d)) => Measurement::numeric(def.metric, d, def.unit),
            Ok(Reading::Absent) => Measurement::absent(def.metric, AbsentReason::Unavailable, def.unit),
            Err(error) => {
                out.push(Event::Rejected { offset, error });
                continue;
            }
        };
        let flags = if def.metric.is_unmapped() { Flags::UNMAPPED } else { Flags::NONE };
        push_event(out, Event::Measurement(m.with_vendor("medibus", code_name(code)).with_flags(flags)));
    }
}

/// The alarm report of a current-alarms (codepage 1) response ([`super::alarms`]): one
/// condition per record, vendor code `ALARM:hh`, the phrase as text, the device's priority
/// number kept as `device_priority`. MEDIBUS says neither the alert type nor an IEC priority:
/// kind is physiological (the more urgent class, so a technical alarm is over- rather than
/// under-stated) and priority `None`. A damaged record is rejected on its own; a damaged
/// response sends no report (the last one stands).
pub fn alarm_report(data: &[u8], offset: u64, out: &mut Vec<Event>) {
    let recs = match alarm_records(data) {
        Ok(r) => r,
        Err(error) => return out.push(Event::Rejected { offset, error }),
    };
    let mut conditions = Vec::new();
    for rec in recs {
        match rec {
            Ok(r) => {
                let mut text: String = r.phrase.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' }).collect();
                if text.trim().is_empty() {
                    text = alloc::format!("alarm {:02X}", r.code);
                }
                let vendor = VendorCode { namespace: "medibus".into(), code: alloc::format!("ALARM:{:02X}", r.code).into() };
                let mut c = AlarmCondition::new(MdcCode::UNMAPPED, vendor, MdcCode::UNMAPPED, AlarmKind::Physiological, text);
                c.device_priority = Some(u16::from(r.priority));
                conditions.push(c);
            }
            Err(error) => out.push(Event::Rejected { offset, error }),
        }
    }
    out.push(Event::Alarms(AlarmReport::new(ReportScope::All, conditions)));
}

/// The identity of a device-identification response.
pub fn identity(data: &[u8]) -> Result<DeviceIdentity, Error> {
    let d = parse_device_id(data)?;
    Ok(DeviceIdentity {
        manufacturer: Some(String::from(MANUFACTURER)),
        model: Some(String::from(d.name.unwrap_or(d.id))),
        firmware: d.revision.map(String::from),
        ..DeviceIdentity::default()
    })
}

impl MedibusDecoder {
    pub fn new(opts: &DecoderOptions) -> MedibusDecoder {
        MedibusDecoder {
            framer: Framer::new(),
            session: Session {
                poll_period: opts.poll_period_ms.max(1) as i64,
                listen_only: opts.listen_only,
                phase: Phase::Idle,
                pending: None,
                next_poll: Timestamp(0),
                last_tx: Timestamp(0),
            },
        }
    }
}

impl Session {
    fn on_message(&mut self, bytes: &[u8], offset: u64, now: Timestamp, out: &mut Vec<Event>) {
        match Message::parse(bytes) {
            Ok(m) => match m.kind {
                Kind::Command if !self.listen_only => self.on_command(m.code, now, out),
                Kind::Command => {}
                Kind::Response => self.on_response(m.code, m.data, offset, now, out),
            },
            Err(error) => self.on_damaged(bytes, offset, error, now, out),
        }
    }

    fn transmit(&mut self, m: Message<'_>, now: Timestamp, out: &mut Vec<Event>) {
        if self.listen_only {
            return;
        }
        self.last_tx = now;
        out.push(Event::Transmit(wire(m)));
    }

    /// Sends our command and waits for its answer.
    fn request(&mut self, code: u8, tries: u8, now: Timestamp, out: &mut Vec<Event>) {
        self.pending = Some(Pending { code, sent_at: now, tries });
        self.transmit(Message::command(code, b""), now, out);
    }

    fn initialise(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.phase = Phase::Initialising;
        self.request(cmd::ICC, 1, now, out);
    }

    /// A command from the device: answer it as the protocol requires.
    fn on_command(&mut self, code: u8, now: Timestamp, out: &mut Vec<Event>) {
        self.transmit(Message::response(code, b""), now, out);
        match code {
            cmd::ICC => {
                // The device (re)starts the session: identify it again.
                self.phase = Phase::Identifying;
                out.push(Event::Session("initialised by device"));
                self.request(cmd::DEVICE_ID, 1, now, out);
            }
            cmd::STOP => {
                self.pending = None;
                self.phase = Phase::Stopped(Timestamp(now.0.saturating_add(RESTART_DELAY_MS)));
                out.push(Event::Session("stopped by device"));
            }
            _ => {}
        }
    }

    fn on_response(&mut self, code: u8, data: &[u8], offset: u64, now: Timestamp, out: &mut Vec<Event>) {
        if self.listen_only {
            match code {
                cmd::CUR_DATA_CP1 => measurements(data, offset, out),
                cmd::ALARMS_CP1 => alarm_report(data, offset, out),
                cmd::DEVICE_ID => match identity(data) {
                    Ok(id) => out.push(Event::Identity(id)),
                    Err(error) => out.push(Event::Rejected { offset, error }),
                },
                _ => {}
            }
            return;
        }
        if code == NAK {
            out.push(Event::Rejected { offset, error: Error::Refused { reason: "NAK" } });
            // The device refused our command: it has no session for us (or our command was
            // damaged on the way). ICC that is refused is simply repeated at its timeout.
            if self.pending.is_some_and(|p| p.code != cmd::ICC) {
                out.push(Event::Session("reinitialising"));
                self.initialise(now, out);
            }
            return;
        }
        let expected = self.pending.is_some_and(|p| p.code == code);
        if !expected {
            if code == cmd::CUR_DATA_CP1 {
                // A late answer to a retried request: the values are still the device's.
                measurements(data, offset, out);
            } else {
                out.push(Event::Rejected { offset, error: Error::UnexpectedMessage { state: self.phase.name(), got: "response" } });
            }
            return;
        }
        self.pending = None;
        match code {
            cmd::ICC => {
                self.phase = Phase::Identifying;
                self.request(cmd::DEVICE_ID, 1, now, out);
            }
            cmd::DEVICE_ID => {
                match identity(data) {
                    Ok(id) => out.push(Event::Identity(id)),
                    Err(error) => out.push(Event::Rejected { offset, error }),
                }
                if self.phase != Phase::Active {
                    self.phase = Phase::Active;
                    out.push(Event::Session("connected"));
                    self.next_poll = now;
                }
            }
            cmd::CUR_DATA_CP1 => {
                measurements(data, offset, out);
                // The alarms right after the values, so both describe the same moment.
                self.request(cmd::ALARMS_CP1, 1, now, out);
            }
            cmd::ALARMS_CP1 => alarm_report(data, offset, out),
            _ => {}
        }
    }

    /// A message that failed to parse.
    fn on_damaged(&mut self, bytes: &[u8], offset: u64, error: Error, now: Timestamp, out: &mut Vec<Event>) {
        out.push(Event::Rejected { offset, error });
        if self.listen_only {
            return;
        }
        match bytes.first() {
            Some(&super::frame::ESC) => self.transmit(Message::response(NAK, b""), now, out),
            Some(&super::frame::SOH) => {
                // Our answer was damaged: ask again now rather than at the timeout.
                if let Some(p) = self.pending {
                    self.retry(p, now, out);
                }
            }
            _ => {}
        }
    }

    fn retry(&mut self, p: Pending, now: Timestamp, out: &mut Vec<Event>) {
        if p.tries < MAX_TRIES {
            self.request(p.code, p.tries + 1, now, out);
        } else if p.code == cmd::ICC {
            self.request(cmd::ICC, 1, now, out);
        } else {
            out.push(Event::Session("reinitialising"));
            self.initialise(now, out);
        }
    }

    /// Timeouts, polls and keep-alives due at `now`; `offset` is the stream offset reported with
    /// a timeout.
    fn drive(&mut self, now: Timestamp, offset: u64, out: &mut Vec<Event>) {
        if self.listen_only || self.phase == Phase::Idle {
            return;
        }
        if let Some(p) = self.pending {
            if now.0 >= p.sent_at.0.saturating_add(RESPONSE_TIMEOUT_MS) {
                out.push(Event::Rejected { offset, error: Error::Timeout { waiting_for: cmd::name(p.code) } });
                self.retry(p, now, out);
            }
            return;
        }
        match self.phase {
            Phase::Active if now >= self.next_poll => {
                let next = self.next_poll.0.saturating_add(self.poll_period);
                self.next_poll = Timestamp(if next > now.0 { next } else { now.0.saturating_add(self.poll_period) });
                self.request(cmd::CUR_DATA_CP1, 1, now, out);
            }
            Phase::Active if now.0 >= self.last_tx.0.saturating_add(KEEPALIVE_MS) => self.request(cmd::NOP, 1, now, out),
            Phase::Stopped(at) if now >= at => self.initialise(now, out),
            _ => {}
        }
    }
}

impl Decoder for MedibusDecoder {
    fn protocol(&self) -> &'static str {
        "medibus"
    }

    fn feed(&mut self, bytes: &[u8], now: Timestamp, out: &mut Vec<Event>) {
        let MedibusDecoder { framer, session } = self;
        // The session moves on after every message (a poll right after identification, a retry
        // right after a damaged answer), so what is sent does not depend on how the bytes were
        // chunked.
        framer.feed(bytes, |e| match e {
            FramerEvent::Message(m, offset) => {
                session.on_message(m, offset, now, out);
                session.drive(now, offset + m.len() as u64 + 1, out);
            }
            FramerEvent::Skipped { offset, error } => out.push(Event::Rejected { offset, error }),
        });
        session.drive(now, framer.offset(), out);
    }

    fn start(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.framer.reset();
        let s = &mut self.session;
        s.pending = None;
        if s.listen_only {
            s.phase = Phase::Listening;
            return;
        }
        s.initialise(now, out);
    }

    fn poll(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.session.drive(now, self.framer.offset(), out);
    }

    fn next_wakeup(&self) -> Option<Timestamp> {
        let s = &self.session;
        if s.listen_only {
            return None;
        }
        if let Some(p) = s.pending {
            return Some(Timestamp(p.sent_at.0.saturating_add(RESPONSE_TIMEOUT_MS)));
        }
        match s.phase {
            Phase::Active => Some(s.next_poll.min(Timestamp(s.last_tx.0.saturating_add(KEEPALIVE_MS)))),
            Phase::Stopped(at) => Some(at),
            _ => None,
        }
    }

    fn sends_requests(&self) -> bool {
        !self.session.listen_only
    }
}

pub(super) fn make(opts: &DecoderOptions) -> Box<dyn Decoder> {
    Box::new(MedibusDecoder::new(opts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use crate::mdc::{code, unit};
    use crate::observation::Value;

    /// DP-1 (request measured data CP1) and DP-3 (ICC, device id, NOP).
    const DP1: &[u8] = &[0x1B, 0x24, 0x33, 0x46, 0x0D];
    /// Request current alarms CP1: ESC '\'' "42" CR (0x1B + 0x27 = 0x42).
    const ALARMS: &[u8] = &[0x1B, 0x27, 0x34, 0x32, 0x0D];
    const ICC: &[u8] = &[0x1B, 0x51, 0x36, 0x43, 0x0D];
    const DEVID: &[u8] = &[0x1B, 0x52, 0x36, 0x44, 0x0D];
    const NOP: &[u8] = &[0x1B, 0x30, 0x34, 0x42, 0x0D];
    /// DP-2: HR 72, pulse rate 71, SpO2 97.
    const DP2: &[u8] = b"\x01$DC  72E1  71EB  97AA\r";

    fn t(ms: i64) -> Timestamp {
        Timestamp(1_000_000 + ms)
    }

    fn response(code: u8, data: &[u8]) -> Vec<u8> {
        wire(Message::response(code, data))
    }

    fn sent(ev: &[Event]) -> Vec<Vec<u8>> {
        ev.iter().filter_map(|e| if let Event::Transmit(b) = e { Some(b.clone()) } else { None }).collect()
    }

    fn feed(d: &mut MedibusDecoder, bytes: &[u8], now: Timestamp) -> Vec<Event> {
        let mut out = Vec::new();
        d.feed(bytes, now, &mut out);
        out
    }

    /// A decoder taken through ICC and identification at t(0).
    fn active() -> MedibusDecoder {
        let mut d = MedibusDecoder::new(&DecoderOptions::default());
        let mut out = Vec::new();
        d.start(t(0), &mut out);
        feed(&mut d, &response(cmd::ICC, b""), t(0));
        let ev = feed(&mut d, &response(cmd::DEVICE_ID, b"0161'Evita'04.02:06.00"), t(0));
        assert_eq!(sent(&ev), [DP1]);
        d
    }

    #[test]
    fn opening_sequence_icc_device_id_then_data() {
        let mut d = MedibusDecoder::new(&DecoderOptions::default());
        assert!(d.sends_requests());
        assert_eq!(d.next_wakeup(), None);
        let mut out = Vec::new();
        d.start(t(0), &mut out);
        assert_eq!(sent(&out), [ICC]);
        assert_eq!(d.next_wakeup(), Some(t(RESPONSE_TIMEOUT_MS)));
        let ev = feed(&mut d, &response(cmd::ICC, b""), t(5));
        assert_eq!(sent(&ev), [DEVID]);
        let ev = feed(&mut d, &response(cmd::DEVICE_ID, b"0161'Evita'04.02:06.00"), t(10));
        let Event::Identity(id) = &ev[0] else { panic!("{ev:?}") };
        assert_eq!(
            (id.manufacturer.as_deref(), id.model.as_deref(), id.firmware.as_deref()),
            (Some("Dräger"), Some("Evita"), Some("04.02"))
        );
        assert_eq!(ev[1], Event::Session("connected"));
        assert_eq!(sent(&ev), [DP1]);
        let ev = feed(&mut d, DP2, t(20));
        let ms: Vec<&Measurement> = ev.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m) } else { None }).collect();
        assert_eq!(ms.len(), 3);
        assert_eq!(
            (ms[0].metric, ms[0].unit, &ms[0].value),
            (code::MDC_ECG_HEART_RATE, unit::MDC_DIM_BEAT_PER_MIN, &Value::Numeric(Decimal::from_int(72)))
        );
        assert_eq!((ms[1].metric, ms[1].value.numeric()), (code::MDC_PULS_OXIM_PULS_RATE, Some(Decimal::from_int(71))));
        assert_eq!(
            (ms[2].metric, ms[2].unit, ms[2].value.numeric()),
            (code::MDC_PULS_OXIM_SAT_O2, unit::MDC_DIM_PERCENT, Some(Decimal::from_int(97)))
        );
        assert_eq!(ms[0].vendor.as_ref().map(|v| v.code.as_ref()), Some("0xDC"));
        assert!(ms.iter().all(|m| m.device_time.is_none() && m.seq.is_none() && m.flags == Flags::NONE));
        // The alarms are asked for right after the values; none active.
        assert_eq!(sent(&ev), [ALARMS]);
        let ev = feed(&mut d, &response(cmd::ALARMS_CP1, b""), t(30));
        assert!(matches!(&ev[..], [Event::Alarms(r)] if r.conditions.is_empty()), "{ev:?}");
        // The next poll one period after the first (sent at t(10)).
        assert_eq!(d.next_wakeup(), Some(t(1010)));
        let mut out = Vec::new();
        d.poll(t(1009), &mut out);
        assert!(out.is_empty());
        d.poll(t(1010), &mut out);
        assert_eq!(sent(&out), [DP1]);
    }

    #[test]
    fn timeouts_retry_then_reinitialise() {
        let mut d = active();
        let mut out = Vec::new();
        for i in 1..MAX_TRIES as i64 {
            d.poll(t(i * RESPONSE_TIMEOUT_MS), &mut out);
        }
        assert_eq!(sent(&out), [DP1, DP1]);
        assert!(matches!(out[0], Event::Rejected { error: Error::Timeout { waiting_for: "current measured data (codepage 1)" }, .. }));
        let mut out = Vec::new();
        d.poll(t(MAX_TRIES as i64 * RESPONSE_TIMEOUT_MS), &mut out);
        assert!(out.contains(&Event::Session("reinitialising")));
        assert_eq!(sent(&out), [ICC]);
        // ICC itself is repeated every timeout, indefinitely.
        let mut out = Vec::new();
        for i in 1..=5 {
            d.poll(t((MAX_TRIES as i64 + i) * RESPONSE_TIMEOUT_MS), &mut out);
        }
        assert_eq!(sent(&out), [ICC; 5]);
    }

    #[test]
    fn device_commands_are_answered() {
        let mut d = active();
        // NOP from the device: echoed.
        assert_eq!(sent(&feed(&mut d, NOP, t(100))), [b"\x01031\r".to_vec()]);
        // An unknown command: echoed with no data.
        assert_eq!(sent(&feed(&mut d, &wire(Message::command(0x6C, b"")), t(100))), [response(0x6C, b"")]);
        // A corrupt command: NAK.
        let ev = feed(&mut d, b"\x1b03C\r", t(100));
        assert!(matches!(ev[0], Event::Rejected { error: Error::BadChecksum { .. }, .. }));
        assert_eq!(sent(&ev), [b"\x01\x1516\r".to_vec()]);
        // ICC from the device: echoed, then the device is identified again.
        let ev = feed(&mut d, ICC, t(100));
        assert_eq!(sent(&ev), [response(cmd::ICC, b""), DEVID.to_vec()]);
    }

    #[test]
    fn nak_and_stop_from_the_device() {
        let mut d = active();
        let ev = feed(&mut d, &response(NAK, b""), t(50));
        assert!(matches!(ev[0], Event::Rejected { error: Error::Refused { reason: "NAK" }, .. }));
        assert_eq!(sent(&ev), [ICC]);
        let mut d = active();
        let ev = feed(&mut d, &wire(Message::command(cmd::STOP, b"")), t(50));
        assert_eq!(sent(&ev), [response(cmd::STOP, b"")]);
        assert_eq!(d.next_wakeup(), Some(t(50 + RESTART_DELAY_MS)));
        let mut out = Vec::new();
        d.poll(t(50 + RESTART_DELAY_MS), &mut out);
        assert_eq!(sent(&out), [ICC]);
    }

    #[test]
    fn a_damaged_answer_is_asked_again_at_once() {
        let mut d = active();
        let mut bad = DP2.to_vec();
        bad[3] = b'X';
        let ev = feed(&mut d, &bad, t(30));
        assert!(matches!(ev[0], Event::Rejected { offset, error: Error::BadChecksum { .. } } if offset > 0));
        assert_eq!(sent(&ev), [DP1]);
    }

    #[test]
    fn keep_alive_when_polling_is_slow() {
        let mut d = MedibusDecoder::new(&DecoderOptions { poll_period_ms: 10_000, listen_only: false, ..Default::default() });
        let mut out = Vec::new();
        d.start(t(0), &mut out);
        feed(&mut d, &response(cmd::ICC, b""), t(0));
        feed(&mut d, &response(cmd::DEVICE_ID, b"0161"), t(0));
        feed(&mut d, DP2, t(0));
        feed(&mut d, &response(cmd::ALARMS_CP1, b""), t(0));
        assert_eq!(d.next_wakeup(), Some(t(KEEPALIVE_MS)));
        let mut out = Vec::new();
        d.poll(t(KEEPALIVE_MS), &mut out);
        assert_eq!(sent(&out), [NOP]);
        feed(&mut d, &response(cmd::NOP, b""), t(KEEPALIVE_MS + 5));
        let mut out = Vec::new();
        d.poll(t(10_000), &mut out);
        assert_eq!(sent(&out), [DP1]);
    }

    #[test]
    fn listen_only_never_transmits_and_decodes_what_it_sees() {
        let mut d = MedibusDecoder::new(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() });
        assert!(!d.sends_requests());
        let mut out = Vec::new();
        d.start(t(0), &mut out);
        d.feed(&[ICC, NOP, b"\x1b03C\r"].concat(), t(1), &mut out);
        d.feed(&response(cmd::DEVICE_ID, b"0161'Evita'04.02:06.00"), t(2), &mut out);
        d.feed(DP2, t(3), &mut out);
        d.poll(t(100_000), &mut out);
        assert!(sent(&out).is_empty());
        assert_eq!(d.next_wakeup(), None);
        assert_eq!(out.iter().filter(|e| matches!(e, Event::Measurement(_))).count(), 3);
        assert_eq!(out.iter().filter(|e| matches!(e, Event::Identity(_))).count(), 1);
    }

    #[test]
    fn absent_unmapped_and_bad_records() {
        let mut out = Vec::new();
        measurements(b"EB ---E1    05  12D6  *1E3 5.3", 7, &mut out);
        let Event::Measurement(spo2) = &out[0] else { panic!() };
        assert_eq!(spo2.value, Value::Absent(AbsentReason::Unavailable));
        assert!(spo2.flags.contains(Flags::UNAVAILABLE));
        let Event::Measurement(pr) = &out[1] else { panic!() };
        assert_eq!(pr.value, Value::Absent(AbsentReason::Unavailable));
        let Event::Measurement(x) = &out[2] else { panic!() };
        assert!(x.metric.is_unmapped() && x.flags.contains(Flags::UNMAPPED));
        assert_eq!(x.vendor.as_ref().map(|v| (v.namespace.as_ref(), v.code.as_ref())), Some(("medibus", "0x05")));
        assert_eq!(x.value.numeric(), Some(Decimal::from_int(12)));
        assert_eq!(out[3], Event::Rejected { offset: 7, error: Error::BadText { field: "medibus value" } });
        let Event::Measurement(co2) = &out[4] else { panic!() };
        assert_eq!(
            (co2.metric, co2.unit, co2.value.numeric()),
            (code::MDC_CONC_AWAY_CO2_ET, unit::MDC_DIM_KILO_PASCAL, Decimal::new(53, -1))
        );
    }

    #[test]
    fn etco2_in_several_units_is_one_observation() {
        // The same reading in mmHg (0xE6), kPa (0xE3) and % (0xDB): only mmHg is published, as
        // 151708 MDC_CONC_AWAY_CO2_ET.
        let mut out = Vec::new();
        measurements(b"E3 5.3DC  72E6  40DB 5.2", 0, &mut out);
        let ms: Vec<&Measurement> = out.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m) } else { None }).collect();
        assert_eq!(ms.len(), 2, "{ms:?}");
        assert_eq!((ms[0].metric, ms[0].value.numeric()), (code::MDC_ECG_HEART_RATE, Some(Decimal::from_int(72))));
        assert_eq!(
            (ms[1].metric, ms[1].unit, ms[1].value.numeric()),
            (code::MDC_CONC_AWAY_CO2_ET, unit::MDC_DIM_MMHG, Some(Decimal::from_int(40)))
        );
        assert_eq!(code::MDC_CONC_AWAY_CO2_ET.0, 151708);
        // kPa alone is published; % alone too (unmapped).
        let mut out = Vec::new();
        measurements(b"DB 5.2E3 5.3", 0, &mut out);
        assert_eq!(out.len(), 1);
        let Event::Measurement(co2) = &out[0] else { panic!() };
        assert_eq!(co2.unit, unit::MDC_DIM_KILO_PASCAL);
    }

    #[test]
    fn current_alarms_become_a_report_with_text_and_device_priority() {
        let mut d = active();
        feed(&mut d, DP2, t(10));
        let ev = feed(&mut d, &response(cmd::ALARMS_CP1, b"\x1e40SpO2 low    \x0a41SpO2 sensor?"), t(20));
        let [Event::Alarms(r)] = &ev[..] else { panic!("{ev:?}") };
        let got: Vec<(&str, &str, Option<u16>)> =
            r.conditions.iter().map(|c| (c.vendor.code.as_ref(), c.text.as_str(), c.device_priority)).collect();
        assert_eq!(got, [("ALARM:40", "SpO2 low", Some(30)), ("ALARM:41", "SpO2 sensor?", Some(10))]);
        assert!(r.conditions.iter().all(|c| c.priority.is_none()));
        // A damaged record is rejected alone; the report still comes.
        let mut out = Vec::new();
        d.poll(t(1000), &mut out);
        assert_eq!(sent(&out), [DP1]);
        feed(&mut d, DP2, t(1010));
        let ev = feed(&mut d, &response(cmd::ALARMS_CP1, b"\x1eZZSpO2 low    \x0a41SpO2 sensor?"), t(1020));
        assert!(matches!(ev[0], Event::Rejected { .. }));
        assert!(matches!(&ev[1], Event::Alarms(r) if r.conditions.len() == 1));
    }
}
