//! The gateway's side of the medgw link: frames in; identity, measurements, acknowledgements and
//! time out.
//!
//! # Durability contract with the gateway
//!
//! An [`Ack`](Message::Ack) tells the node it may forget a batch, so it must only reach the node
//! once the batch is durably accepted (decisions.md, "Durability"). The decoder emits, for each
//! batch, the batch's [`Event::Measurement`]s and then the [`Event::Transmit`] carrying the ack,
//! in that order, in the same `feed` call. The gateway processes events in order and commits the
//! measurements to its disk buffer before it writes the transmit bytes to the port; a crash in
//! between loses only the ack, and the node resends the batch.
//!
//! # Alarms
//!
//! The node's quality flags that are technical alerts ([`crate::alarm::flags::SENSOR_NODE`]:
//! sensor off, pulse lost, artifact, low perfusion, low signal quality, low battery, invalid)
//! become an [`Event::Alarms`] report for the whole node (the union over the batch's current
//! readings) when that set changes, and with the first batch after (re)start. Readings from
//! the node's memory ([`Flags::FROM_STORAGE`]) describe the past and raise nothing.
//!
//! # Time
//!
//! `time_ms` is UTC when the node's clock is synchronised: the measurement gets
//! [`DeviceTime::Utc`]. With [`Flags::CLOCK_NOT_SET`] it is the node's uptime, which is no time of
//! day: the measurement has no device time and keeps the flag, so the gateway uses its receipt
//! time. The node asks for the time with `TimeRequest`; the decoder answers with `TimeSync`.
//!
//! Observation ids include the batch `seq` (the measurement's `seq`), so a node must not put two
//! observations of one metric with the same `time_ms` in one batch; the medgw firmware makes one
//! batch per estimate cycle, which holds one observation per metric.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::{parse_payload, Feed, FrameAccumulator, LinkObservation, LinkValue, Message, LINK_VERSION, MAX_FRAME, PROTOCOL};
use crate::alarm::{flags as alarm_flags, AlarmReport, ReportScope};
use crate::decimal::Decimal;
use crate::decode::{Decoder, DecoderOptions, Event, ProtocolInfo};
use crate::error::Error;
use crate::mdc::MdcCode;
use crate::observation::{DeviceIdentity, Eui64, Measurement};
use crate::quality::{AbsentReason, Flags, Status};
use crate::time::{DeviceTime, Timestamp};

/// The registry rows of this module.
pub const PROTOCOLS: &[ProtocolInfo] = &[ProtocolInfo {
    name: PROTOCOL,
    description: "medgw sensor node link: postcard messages in COBS frames with CRC-32 (medgw firmware)",
    serial: Some(crate::serial::SerialSettings::new(115_200, 8, crate::serial::Parity::None, 1)),
    gatt: false,
    make: make_decoder,
}];

fn make_decoder(options: &DecoderOptions) -> Box<dyn Decoder> {
    Box::new(LinkDecoder::new(options))
}

/// Vendor namespace for a metric code 0 (the node sent no MDC code).
const NAMESPACE: &str = "medgw-link";

/// The gateway does not repeat a `HelloRequest` sooner than this.
pub const HELLO_REQUEST_INTERVAL_MS: i64 = 2_000;

/// Sequence tracking for one boot of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    boot_id: u32,
    /// The next `seq` that extends the contiguous run; `None` until the baseline batch.
    expected: Option<u32>,
    /// The previous batch's `seq`.
    last: Option<u32>,
    /// The next batch starts a resend run (a `Hello` was just received).
    run_start: bool,
}

/// What the sequence rules decided for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    gap: Option<(u32, u32)>,
    ack: Option<u32>,
}

/// The medgw-link decoder (protocol `medgw-link`).
#[derive(Debug, Clone)]
pub struct LinkDecoder {
    acc: FrameAccumulator,
    listen_only: bool,
    session: Option<Session>,
    /// The boot of the last `Hello`, to tell a restart of the node.
    hello_boot: Option<u32>,
    last_hello_request: Option<Timestamp>,
    /// The alert flags of the last alarm report.
    last_alarm: Option<Flags>,
}

impl LinkDecoder {
    pub fn new(options: &DecoderOptions) -> LinkDecoder {
        LinkDecoder {
            acc: FrameAccumulator::new(),
            listen_only: options.listen_only,
            session: None,
            hello_boot: None,
            last_hello_request: None,
            last_alarm: None,
        }
    }

    /// The frame bytes of `msg` (delimiter included).
    pub fn frame(msg: &Message) -> Result<Vec<u8>, Error> {
        let mut buf = [0u8; MAX_FRAME];
        let n = super::encode(msg, &mut buf)?;
        Ok(buf.get(..n).unwrap_or_default().to_vec())
    }

    /// The frame of an acknowledgement of every batch of `boot_id` up to `seq`.
    pub fn ack_bytes(boot_id: u32, seq: u32) -> Vec<u8> {
        // An Ack is at most 11 bytes of payload: it always fits.
        Self::frame(&Message::Ack { boot_id, seq }).unwrap_or_default()
    }

    fn transmit(&self, msg: &Message, out: &mut Vec<Event>) {
        if self.listen_only {
            return;
        }
        if let Ok(bytes) = Self::frame(msg) {
            out.push(Event::Transmit(bytes));
        }
    }

    fn request_hello(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let due = match self.last_hello_request {
            Some(t) => now.0.saturating_sub(t.0) >= HELLO_REQUEST_INTERVAL_MS || now < t,
            None => true,
        };
        if due && !self.listen_only {
            self.last_hello_request = Some(now);
            self.transmit(&Message::HelloRequest, out);
        }
    }

    fn on_message(&mut self, msg: &Message, offset: u64, now: Timestamp, out: &mut Vec<Event>) {
        match msg {
            &Message::Hello { version, eui64, ref model, ref firmware, boot_id } => {
                if version != LINK_VERSION {
                    out.push(Event::Rejected { offset, error: Error::Unsupported { what: "medgw-link version", value: version as u32 } });
                    return;
                }
                out.push(Event::Identity(DeviceIdentity {
                    manufacturer: Some(String::from("medgw")),
                    model: Some(String::from(model.as_str())),
                    serial: None,
                    eui64: Some(Eui64(eui64)),
                    firmware: Some(String::from(firmware.as_str())),
                }));
                if self.hello_boot.is_some_and(|b| b != boot_id) {
                    out.push(Event::Session("node-restarted"));
                }
                self.hello_boot = Some(boot_id);
                match &mut self.session {
                    Some(s) if s.boot_id == boot_id => s.run_start = true,
                    other => *other = Some(Session { boot_id, expected: None, last: None, run_start: true }),
                }
            }
            &Message::Observations { seq, boot_id, ref items } => {
                let verdict = self.sequence(boot_id, seq, now, out);
                if let Some((expected, found)) = verdict.gap {
                    out.push(Event::SequenceGap { expected, found });
                }
                let mut alerts = Flags::NONE;
                let mut current = false;
                for item in items {
                    let flags = Flags(item.flags);
                    if !flags.contains(Flags::FROM_STORAGE) {
                        current = true;
                        alerts |= Flags(flags.0 & alarm_flags::mask(alarm_flags::SENSOR_NODE).0);
                    }
                    out.push(Event::Measurement(measurement(item, seq)));
                }
                if current && self.last_alarm != Some(alerts) {
                    self.last_alarm = Some(alerts);
                    let conditions = alarm_flags::conditions(alerts, alarm_flags::SENSOR_NODE, NAMESPACE, crate::mdc::MdcCode::UNMAPPED);
                    out.push(Event::Alarms(AlarmReport::new(ReportScope::All, conditions)));
                }
                if let Some(ack) = verdict.ack {
                    self.transmit(&Message::Ack { boot_id, seq: ack }, out);
                }
            }
            &Message::TimeRequest { uptime_ms } => {
                self.transmit(&Message::TimeSync { utc_ms: now.0, echo_uptime_ms: uptime_ms }, out);
            }
            other @ (Message::TimeSync { .. } | Message::Ack { .. } | Message::HelloRequest) => {
                // The gateway's own messages coming back: a loopback or a second gateway.
                out.push(Event::Rejected {
                    offset,
                    error: Error::UnexpectedMessage { state: "gateway side of the link", got: other.name() },
                });
            }
        }
    }

    /// Applies the sequence rules of the module docs (`wire::link`, "Protocol").
    fn sequence(&mut self, boot_id: u32, seq: u32, now: Timestamp, out: &mut Vec<Event>) -> Verdict {
        let known = matches!(&self.session, Some(s) if s.boot_id == boot_id);
        if !known {
            if self.listen_only {
                // Nothing is acknowledged in listen-only mode, so the first batch seen may set
                // the baseline for gap detection.
                self.session = Some(Session { boot_id, expected: None, last: None, run_start: true });
            } else {
                // A new boot whose Hello was lost, or a gateway that just started: without a Hello
                // the node's oldest batch is unknown, so nothing can be acknowledged yet.
                self.session = None;
                self.request_hello(now, out);
                return Verdict { gap: None, ack: None };
            }
        }
        let Some(s) = self.session.as_mut() else {
            return Verdict { gap: None, ack: None };
        };
        let run_start = s.run_start || s.last.is_some_and(|l| seq <= l);
        s.run_start = false;
        s.last = Some(seq);
        match s.expected {
            None => {
                s.expected = Some(seq.wrapping_add(1));
                Verdict { gap: None, ack: Some(seq) }
            }
            Some(e) if seq == e => {
                s.expected = Some(seq.wrapping_add(1));
                Verdict { gap: None, ack: Some(seq) }
            }
            Some(e) if seq < e => Verdict { gap: None, ack: e.checked_sub(1) },
            Some(e) if run_start => {
                s.expected = Some(seq.wrapping_add(1));
                Verdict { gap: Some((e, seq)), ack: Some(seq) }
            }
            // A frame was lost: the node will resend it. Repeat the last acknowledgement.
            Some(e) => Verdict { gap: None, ack: e.checked_sub(1) },
        }
    }
}

/// One link observation as a canonical measurement.
pub(crate) fn measurement(item: &LinkObservation, seq: u32) -> Measurement {
    let metric = MdcCode(item.metric);
    let unit = MdcCode(item.unit);
    let flags = Flags(item.flags);
    let mut m = match item.value {
        LinkValue::Numeric { mantissa, exponent } => match Decimal::new(mantissa as i64, exponent) {
            Some(d) => Measurement::numeric(metric, d, unit),
            // An exponent beyond ±18 is no value any device measures.
            None => Measurement::absent(metric, AbsentReason::Reserved, unit).with_flags(Flags::INVALID),
        },
        LinkValue::Absent(index) => match super::absent_from_index(index) {
            Some(reason) => Measurement::absent(metric, reason, unit),
            None => Measurement::absent(metric, AbsentReason::Reserved, unit).with_flags(Flags::INVALID),
        },
    };
    m = m.with_flags(flags).with_seq(Some(seq));
    if !flags.contains(Flags::CLOCK_NOT_SET) {
        m = m.with_time(Some(DeviceTime::Utc(Timestamp(item.time_ms))));
    }
    if flags.contains(Flags::EARLY_ESTIMATE) {
        m.status = Status::Preliminary;
    }
    if metric.is_unmapped() {
        m = m.with_vendor(NAMESPACE, "0").with_flags(Flags::UNMAPPED);
    }
    m
}

impl Decoder for LinkDecoder {
    fn protocol(&self) -> &'static str {
        PROTOCOL
    }

    fn feed(&mut self, bytes: &[u8], now: Timestamp, out: &mut Vec<Event>) {
        let mut input = bytes;
        loop {
            let (offset, result, rest) = match self.acc.feed(input) {
                Feed::Consumed => return,
                Feed::Frame { offset, result, rest } => (offset, result.and_then(parse_payload), rest),
            };
            match &result {
                Ok(msg) => self.on_message(msg, offset, now, out),
                Err(error) => out.push(Event::Rejected { offset, error: error.clone() }),
            }
            input = rest;
        }
    }

    /// Drops a partial frame and asks the node who it is; the node answers with a `Hello` and
    /// resends what it holds.
    fn start(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.acc.clear();
        self.last_hello_request = None;
        self.last_alarm = None;
        self.request_hello(now, out);
    }

    fn sends_requests(&self) -> bool {
        !self.listen_only
    }
}
