//! The Data Export client as a sans-IO state machine: time comes in, frames go out as
//! [`Event::Transmit`], measurements and session changes come back as events.
//!
//! ```text
//!            start                 AARE                 MDS create event         every poll period
//!  Idle ──────────────▶ AwaitAare ──────▶ AwaitMdsCreate ─────────────────▶ Associated ──▶ ext poll
//!   (AARQ sent)            │ refuse/timeout      │ timeout (abort sent)      │  ▲  replies: ROLRS…, RORS
//!                          ▼                     ▼                           │  └── keep-alive poll when idle
//!                       Backoff ◀────────────────┴──────── abort / release / reply timeout (abort sent)
//!                          └── after 1 s, 2 s, 4 s … 30 s: AARQ again
//!
//!  gateway stops (release):  AwaitMdsCreate / Associated ──▶ Releasing ──▶ Idle
//!                            (release request sent)     release response, abort, or 1 s (abort sent)
//!  connection error (abort): any state with an association ──▶ Idle (abort sent)
//! ```
//!
//! Ending the association: a monitor whose client vanishes keeps the association until its
//! connection time-out (below) and refuses every new association request meanwhile, so a
//! gateway that restarts without ending it loses that time-out's worth of data. When the gateway
//! stops, the client therefore sends the release request (SPDU 0x09, ACSE RLRQ; protocols.md
//! §3 "release request", VSC `rlrq_msg`) and waits up to [`RELEASE_TIMEOUT_MS`] for the release
//! response (SPDU 0x0A); without one it sends an abort. When the gateway drops the connection
//! for an error (a failed write, silence), it sends the abort (SPDU 0x19, protocols.md §3) so a
//! monitor that still hears it frees the association at once.
//!
//! Protocol dialog (guide ch. 3; VSC, ICE): the client sends the association request; the
//! monitor answers with the association result and then an MDS Create Event Report, which the
//! client must confirm (the MDS create result) before it polls. medgw then sends one extended
//! numeric poll (NOM_ACT_POLL_MDIB_DATA_EXT, numerics, all attributes) per poll period and waits
//! for its reply, which may come as several linked results (ROLRS first … last) before or
//! instead of the final RORS. Beside it, one request outstanding at a time, in this order when
//! several are due: the alert monitor (extended poll, group NOM_ATTR_GRP_AL_MON) once per poll
//! period → `Event::Alarms` per list (`alarms.rs`); with `DecoderOptions::waves`, the wave
//! priority list SET once per association and a wave poll every 256 ms → `Event::Wave`
//! (`wave.rs`); the patient demographics (single poll) at association and every 10 s (never
//! more often than the poll period) → `Event::PatientId` (`demographics.rs`). A lost reply to any
//! of them is a poll time-out, as for the numerics.
//!
//! Time-outs: the monitor drops an association that hears nothing from its client within a
//! time-out derived from the negotiated minimum poll period: 10 s up to 3.3 s, three periods up
//! to 43 s, else 130 s (ICE `minPollPeriodToTimeout`, the guide's "Connection Time-out
//! Mechanism" section) **[single source]**. The client therefore sends a keep-alive single poll
//! (MDS object, system production group, as VSC's `keep_alive_msg`; its reply also carries the
//! model and serial number) when it has sent nothing for that time-out minus 1 s (ICE
//! `OUT_CONNECTION_ASSERT`). With the default 1 s poll period the polls themselves keep the
//! association alive. medgw waits 5 s for the association result and for the MDS create event
//! (KOS waits 5 s for the result) and 3 s for a poll reply; a missing reply aborts the
//! association and starts again after a back-off.
//!
//! Listen-only: a Data Export association belongs to one client, and the monitor sends poll
//! results only in answer to that client's polls. A listen-only decoder on a Y-cable therefore
//! never transmits and decodes what the monitor sends to the other client: results arrive only
//! while the other client polls, and stop when it stops; nothing the listen-only side does can
//! make the monitor talk.
//!
//! Times: the poll reply carries the monitor's relative time (125 us ticks) and absolute time
//! (BCD wall clock, local time without a zone: [`DeviceTime::Local`]). An observation with its
//! own absolute time stamp uses it; one with a relative time stamp is placed by the reply's
//! (relative, absolute) pair; otherwise the reply's absolute time is the observation time. When
//! the reply's absolute time is not set (VSC: "not supported by several monitors"), the
//! (NOM_ATTR_TIME_REL, NOM_ATTR_TIME_ABS) pair of the MDS object is the reference (VSC, ICE).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::decode::{Decoder, DecoderOptions, Event};
use crate::error::Error;
use crate::mdc::MdcCode;
use crate::observation::{Component, DeviceIdentity, Eui64, Measurement, Scalar, Value};
use crate::quality::{AbsentReason, Flags, Status};
use crate::time::{DeviceTime, Timestamp};
use crate::wire::sfloat::{float, FloatValue};

use super::attributes::{
    self, group, id, label_text, spec_type, AbsoluteTime, AttributeList, MeasurementState, NuObsValue, NuObsValueCmp, ProductionSpec,
    RelativeTime, SystemModel, ID_COMP_PRODUCT,
};
use super::frame::{self, Deframer, FrameEvent};
use super::pdu::{self, action, command, linked, Apdu, ObjectType, PollReply};
use super::session::{self, PollProfile, Spdu};
use super::wave::RtsaDecoder;
use super::Reader;
use super::{alarms, demographics, nomenclature};

/// The vendor namespace of unmapped codes.
pub const NAMESPACE: &str = "intellivue";
/// Receive buffer: un-escaped header, user data and FCS. The client announces a receive MTU of
/// 2500 bytes in its poll profile; 4096 leaves room for a monitor that sends more.
pub const RX_MAX: usize = 4096;
pub const ASSOCIATION_TIMEOUT_MS: i64 = 5_000;
pub const MDS_CREATE_TIMEOUT_MS: i64 = 5_000;
pub const REPLY_TIMEOUT_MS: i64 = 3_000;
pub const BACKOFF_MIN_MS: i64 = 1_000;
pub const BACKOFF_MAX_MS: i64 = 30_000;
/// How long a release waits for the monitor's release response before it aborts instead.
pub const RELEASE_TIMEOUT_MS: i64 = 1_000;
/// The shortest poll period medgw uses, whatever the configuration says.
pub const MIN_POLL_PERIOD_MS: u32 = 100;

/// The monitor's connection time-out for a negotiated minimum poll period (see module doc).
pub fn connection_timeout_ms(min_poll_period_ms: u64) -> u64 {
    match min_poll_period_ms {
        0..=3_300 => 10_000,
        3_301..=43_000 => 3 * min_poll_period_ms,
        _ => 130_000,
    }
}

/// A (relative time, absolute time) pair of the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeBase {
    rel: RelativeTime,
    abs: Timestamp,
}

impl TimeBase {
    fn at(&self, rel: RelativeTime) -> Timestamp {
        Timestamp(self.abs.0.saturating_add(rel.millis_since(self.rel)))
    }
}

/// What a request asked for (its reply is matched by invoke id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PollKind {
    Numerics,
    Alarms,
    Waves,
    Demographics,
    /// The SET of the wave priority list, once per association before the first wave poll.
    WaveList,
    KeepAlive,
}

impl PollKind {
    /// Bit in `Session::due`; in the order they are sent when several are due (the numerics
    /// first, as before the other polls existed; the alert monitor right after them).
    const ORDER: [PollKind; 5] = [PollKind::WaveList, PollKind::Numerics, PollKind::Alarms, PollKind::Waves, PollKind::Demographics];

    fn bit(self) -> u8 {
        match self {
            PollKind::WaveList => 1,
            PollKind::Alarms => 2,
            PollKind::Numerics => 4,
            PollKind::Waves => 8,
            PollKind::Demographics => 16,
            PollKind::KeepAlive => 0,
        }
    }
}

/// How often the patient demographics are polled: a patient id changes rarely, but an ADT
/// admission after the device's last report must be checked against it within seconds.
pub const DEMOGRAPHICS_POLL_PERIOD_MS: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    invoke_id: u16,
    deadline: Timestamp,
    kind: PollKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Listening,
    AwaitAare {
        deadline: Timestamp,
    },
    AwaitMdsCreate {
        deadline: Timestamp,
    },
    Associated {
        next_poll: Timestamp,
        pending: Option<Pending>,
    },
    /// Waiting before the next association request; `why` the last one ended (a session state
    /// name, see [`State::session`]).
    Backoff {
        until: Timestamp,
        why: &'static str,
    },
    /// The release request is sent; waiting for the release response.
    Releasing {
        deadline: Timestamp,
    },
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Listening => "listening",
            State::AwaitAare { .. } => "awaiting association result",
            State::AwaitMdsCreate { .. } => "awaiting MDS create event",
            State::Associated { .. } => "associated",
            State::Backoff { .. } => "backing off",
            State::Releasing { .. } => "releasing",
        }
    }

    /// The association's state as the status page shows it.
    fn session(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Listening => "listening",
            State::AwaitAare { .. } | State::AwaitMdsCreate { .. } => "associating",
            State::Associated { .. } => "associated",
            State::Backoff { why, .. } => why,
            State::Releasing { .. } => "releasing",
        }
    }
}

/// Everything but the receive buffer, so that a frame borrowed from the deframer can be handled
/// without copying it.
#[derive(Debug)]
struct Session {
    listen_only: bool,
    poll_period_ms: i64,
    state: State,
    invoke_id: u16,
    poll_number: u16,
    backoff_ms: i64,
    last_tx: Timestamp,
    keep_alive_ms: i64,
    identity: DeviceIdentity,
    mds_time: Option<TimeBase>,
    /// The invoke id and count of the last linked result seen.
    linked: Option<(u16, u8)>,
    /// Requests due but not yet sent (`PollKind::bit`): one request is outstanding at a time.
    due: u8,
    next_wave: Timestamp,
    next_demographics: Timestamp,
    /// The configured waves (physio ids); empty: no wave poll.
    waves: Vec<u16>,
    rtsa: RtsaDecoder,
    tx: [u8; 512],
}

/// The IntelliVue Data Export client (registry name `intellivue`).
#[derive(Debug)]
pub struct IntelliVueClient {
    rx: Deframer<RX_MAX>,
    s: Session,
}

/// The registry constructor.
pub fn make(opts: &DecoderOptions) -> Box<dyn Decoder> {
    Box::new(IntelliVueClient::new(opts))
}

impl IntelliVueClient {
    pub fn new(opts: &DecoderOptions) -> IntelliVueClient {
        let period = opts.poll_period_ms.max(MIN_POLL_PERIOD_MS);
        IntelliVueClient {
            rx: Deframer::new(),
            s: Session {
                listen_only: opts.listen_only,
                poll_period_ms: period as i64,
                // A listen-only decoder has nothing to start: it decodes from the first byte.
                state: if opts.listen_only { State::Listening } else { State::Idle },
                invoke_id: 0,
                poll_number: 0,
                backoff_ms: BACKOFF_MIN_MS,
                last_tx: Timestamp(0),
                keep_alive_ms: keep_alive_for(period as u64),
                identity: DeviceIdentity::default(),
                mds_time: None,
                linked: None,
                due: 0,
                next_wave: Timestamp(0),
                next_demographics: Timestamp(0),
                waves: opts.waves.iter().copied().take(super::wave::MAX_WAVES).collect(),
                rtsa: RtsaDecoder::new(),
                tx: [0; 512],
            },
        }
    }

    /// Whether the association is up and polls are being sent.
    pub fn is_associated(&self) -> bool {
        matches!(self.s.state, State::Associated { .. })
    }

    /// What the monitor has said about itself so far.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.s.identity
    }
}

fn keep_alive_for(min_poll_period_ms: u64) -> i64 {
    (connection_timeout_ms(min_poll_period_ms) as i64 - 1_000).max(200)
}

fn after(t: Timestamp, ms: i64) -> Timestamp {
    Timestamp(t.0.saturating_add(ms))
}

fn civil_timestamp(t: &AbsoluteTime) -> Option<Timestamp> {
    t.civil().ok().flatten().and_then(|c| c.to_timestamp().ok())
}

impl Session {
    fn reject(&self, offset: u64, error: Error, out: &mut Vec<Event>) {
        out.push(Event::Rejected { offset, error });
    }

    fn unexpected(&self, offset: u64, got: &'static str, out: &mut Vec<Event>) {
        self.reject(offset, Error::UnexpectedMessage { state: self.state.name(), got }, out);
    }

    /// Frames and queues `user_data`; never in listen-only mode.
    fn send(&mut self, user_data_len: usize, now: Timestamp, out: &mut Vec<Event>) {
        if self.listen_only {
            return;
        }
        let Some(user_data) = self.tx.get(..user_data_len) else { return };
        let bytes = frame::encode_vec(user_data);
        if !bytes.is_empty() {
            out.push(Event::Transmit(bytes));
            self.last_tx = now;
        }
    }

    fn next_invoke(&mut self) -> u16 {
        self.invoke_id = self.invoke_id.wrapping_add(1);
        self.invoke_id
    }

    fn send_aarq(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let profile = PollProfile::client(RelativeTime::from_millis(self.min_poll_period_ms() as u64));
        if let Ok(n) = session::encode_aarq(&profile, &mut self.tx) {
            self.send(n, now, out);
        }
        self.linked = None;
        self.state = State::AwaitAare { deadline: after(now, ASSOCIATION_TIMEOUT_MS) };
    }

    fn send_abort(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        if let Ok(n) = session::encode_abort(&mut self.tx) {
            self.send(n, now, out);
        }
    }

    /// `why`: what ended the association attempt, shown while waiting (`refused`, `aborted`,
    /// `timed-out`, `released`).
    fn enter_backoff(&mut self, now: Timestamp, why: &'static str) {
        if self.listen_only {
            self.state = State::Listening;
            return;
        }
        self.state = State::Backoff { until: after(now, self.backoff_ms), why };
        self.backoff_ms = (self.backoff_ms * 2).min(BACKOFF_MAX_MS);
        self.linked = None;
    }

    /// Sends one request. Numerics and waves: extended polls (the numeric poll as before; the
    /// wave poll as VSC's and ICE's, all attributes so that each object's context comes along,
    /// p. 287). Alert monitor: an extended poll with the alert monitor group, as ICE polls it
    /// every second (hospital-integration.md §2: alert poll period 1 s). Demographics: a single
    /// poll with the demographics group, as ICE. Keep-alive: a single poll of the MDS.
    fn send_poll(&mut self, now: Timestamp, kind: PollKind, out: &mut Vec<Event>) -> Option<Pending> {
        let invoke_id = self.next_invoke();
        self.poll_number = self.poll_number.wrapping_add(1);
        let (tx, pn) = (&mut self.tx, self.poll_number);
        let n = match kind {
            PollKind::KeepAlive => pdu::encode_poll_request(tx, invoke_id, pn, ObjectType::MDS, group::NOM_ATTR_GRP_SYS_PROD),
            PollKind::Numerics => pdu::encode_ext_poll_request(tx, invoke_id, pn, ObjectType::NUMERICS, group::ALL),
            PollKind::Alarms => pdu::encode_ext_poll_request(tx, invoke_id, pn, ObjectType::ALERT_MONITOR, group::NOM_ATTR_GRP_AL_MON),
            PollKind::Waves => pdu::encode_ext_poll_request(tx, invoke_id, pn, super::wave::WAVES, group::ALL),
            PollKind::Demographics => {
                pdu::encode_poll_request(tx, invoke_id, pn, ObjectType::PATIENT_DEMOGRAPHICS, group::NOM_ATTR_GRP_PT_DEMOG)
            }
            PollKind::WaveList => {
                let waves = &self.waves;
                pdu::encode_set_request(tx, invoke_id, super::wave::NOM_ATTR_POLL_RTSA_PRIO_LIST, |w| {
                    super::wave::write_text_id_list(w, waves)
                })
            }
        };
        let n = n.ok()?;
        self.send(n, now, out);
        Some(Pending { invoke_id, deadline: after(now, REPLY_TIMEOUT_MS), kind })
    }

    /// Never more often than the numerics: the association announced the poll period as its
    /// minimum.
    fn demographics_period_ms(&self) -> i64 {
        DEMOGRAPHICS_POLL_PERIOD_MS.max(self.poll_period_ms)
    }

    /// The shortest poll period this client uses, announced in the association: the wave poll
    /// period when waves are configured.
    fn min_poll_period_ms(&self) -> i64 {
        if self.waves.is_empty() {
            self.poll_period_ms
        } else {
            self.poll_period_ms.min(super::wave::WAVE_POLL_PERIOD_MS)
        }
    }

    /// Sends the first request due, if any; returns what is now outstanding.
    fn send_due(&mut self, now: Timestamp, out: &mut Vec<Event>) -> Option<Pending> {
        let kind = PollKind::ORDER.into_iter().find(|k| self.due & k.bit() != 0)?;
        self.due &= !kind.bit();
        self.send_poll(now, kind, out)
    }

    /// The association is up: everything is due at once (the wave list first, when waves are
    /// configured; the waves themselves only after it).
    fn enter_associated(&mut self, now: Timestamp) {
        self.state = State::Associated { next_poll: now, pending: None };
        self.due = if self.waves.is_empty() { 0 } else { PollKind::WaveList.bit() };
        self.next_wave = after(now, super::wave::WAVE_POLL_PERIOD_MS);
        self.next_demographics = now;
        self.rtsa.reset();
    }

    /// The outstanding request `invoke_id` is answered (or refused): the next one due goes out.
    fn complete(&mut self, invoke_id: u16, now: Timestamp, out: &mut Vec<Event>) -> bool {
        if let State::Associated { next_poll, pending: Some(p) } = self.state {
            if p.invoke_id == invoke_id {
                let pending = self.send_due(now, out);
                self.state = State::Associated { next_poll, pending };
                return true;
            }
        }
        false
    }

    fn timers(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        match self.state {
            State::Idle | State::Listening => {}
            State::AwaitAare { deadline } if now >= deadline => {
                out.push(Event::Session("association-timeout"));
                self.enter_backoff(now, "timed-out");
            }
            State::AwaitMdsCreate { deadline } if now >= deadline => {
                out.push(Event::Session("mds-create-timeout"));
                self.send_abort(now, out);
                self.enter_backoff(now, "timed-out");
            }
            State::Associated { pending: Some(p), .. } if now >= p.deadline => {
                out.push(Event::Session(if p.kind == PollKind::KeepAlive { "keep-alive-timeout" } else { "poll-timeout" }));
                self.send_abort(now, out);
                self.enter_backoff(now, "timed-out");
            }
            State::Associated { mut next_poll, pending: None } => {
                if now >= next_poll {
                    self.due |= PollKind::Numerics.bit() | PollKind::Alarms.bit();
                    next_poll = next_period(next_poll, self.poll_period_ms, now);
                }
                if !self.waves.is_empty() && now >= self.next_wave {
                    self.due |= PollKind::Waves.bit();
                    self.next_wave = next_period(self.next_wave, super::wave::WAVE_POLL_PERIOD_MS, now);
                }
                if now >= self.next_demographics {
                    self.due |= PollKind::Demographics.bit();
                    self.next_demographics = next_period(self.next_demographics, self.demographics_period_ms(), now);
                }
                let mut pending = self.send_due(now, out);
                if pending.is_none() && now.0 - self.last_tx.0 >= self.keep_alive_ms {
                    pending = self.send_poll(now, PollKind::KeepAlive, out);
                }
                self.state = State::Associated { next_poll, pending };
            }
            State::Backoff { until, .. } if now >= until => self.send_aarq(now, out),
            State::Releasing { deadline } if now >= deadline => {
                out.push(Event::Session("release-timeout"));
                self.send_abort(now, out);
                self.state = State::Idle;
            }
            State::AwaitAare { .. }
            | State::AwaitMdsCreate { .. }
            | State::Associated { .. }
            | State::Backoff { .. }
            | State::Releasing { .. } => {}
        }
    }

    fn next_wakeup(&self) -> Option<Timestamp> {
        match self.state {
            State::Idle | State::Listening => None,
            State::AwaitAare { deadline } | State::AwaitMdsCreate { deadline } | State::Releasing { deadline } => Some(deadline),
            State::Associated { pending: Some(p), .. } => Some(p.deadline),
            State::Associated { next_poll, pending: None } => {
                let mut t = next_poll.min(after(self.last_tx, self.keep_alive_ms)).min(self.next_demographics);
                if !self.waves.is_empty() {
                    t = t.min(self.next_wave);
                }
                Some(t)
            }
            State::Backoff { until, .. } => Some(until),
        }
    }

    /// Ends the association politely (see the module doc); nothing when there is none.
    fn release(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        match self.state {
            State::AwaitMdsCreate { .. } | State::Associated { .. } => {
                if let Ok(n) = session::encode_release_request(&mut self.tx) {
                    self.send(n, now, out);
                }
                self.state = State::Releasing { deadline: after(now, RELEASE_TIMEOUT_MS) };
            }
            // The monitor may be accepting right now: an abort ends whatever it has started.
            State::AwaitAare { .. } => self.abort(now, out),
            State::Idle | State::Listening | State::Backoff { .. } | State::Releasing { .. } => {}
        }
    }

    /// Aborts the association, if one is up or being set up or released.
    fn abort(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        match self.state {
            State::AwaitAare { .. } | State::AwaitMdsCreate { .. } | State::Associated { .. } | State::Releasing { .. } => {
                self.send_abort(now, out);
                self.state = State::Idle;
                self.linked = None;
            }
            State::Idle | State::Listening | State::Backoff { .. } => {}
        }
    }

    fn handle_frame(&mut self, user_data: &[u8], offset: u64, now: Timestamp, out: &mut Vec<Event>) {
        let spdu = match session::parse(user_data) {
            Ok(s) => s,
            Err(e) => return self.reject(offset, e, out),
        };
        if let State::Releasing { .. } = self.state {
            return self.handle_while_releasing(spdu, offset, now, out);
        }
        match spdu {
            Spdu::Accept(info) => match self.state {
                State::AwaitAare { .. } => {
                    let min_ms = info.and_then(|i| i.poll_profile).map(|p| p.min_poll_period.as_millis());
                    self.keep_alive_ms = keep_alive_for(min_ms.unwrap_or(self.min_poll_period_ms() as u64));
                    self.state = State::AwaitMdsCreate { deadline: after(now, MDS_CREATE_TIMEOUT_MS) };
                    out.push(Event::Session("association-accepted"));
                }
                State::Listening => out.push(Event::Session("association-accepted")),
                _ => self.unexpected(offset, "association result", out),
            },
            Spdu::Refuse => match self.state {
                State::AwaitAare { .. } | State::Listening => {
                    out.push(Event::Session("association-refused"));
                    self.enter_backoff(now, "refused");
                }
                _ => self.unexpected(offset, "association refusal", out),
            },
            Spdu::Abort => match self.state {
                State::Idle | State::Backoff { .. } => self.unexpected(offset, "abort", out),
                _ => {
                    out.push(Event::Session("aborted"));
                    self.enter_backoff(now, "aborted");
                }
            },
            Spdu::ReleaseRequest => match self.state {
                State::Idle | State::Backoff { .. } => self.unexpected(offset, "release request", out),
                _ => {
                    if let Ok(n) = session::encode_release_response(&mut self.tx) {
                        self.send(n, now, out);
                    }
                    out.push(Event::Session("released"));
                    self.enter_backoff(now, "released");
                }
            },
            Spdu::ReleaseResponse => match self.state {
                State::Listening => out.push(Event::Session("released")),
                _ => self.unexpected(offset, "release result", out),
            },
            // The other client's request, seen when a listen-only tap hears both directions.
            Spdu::Connect(_) if self.listen_only => {}
            Spdu::Connect(_) => self.unexpected(offset, "association request", out),
            Spdu::Data { apdu, .. } => self.handle_data(apdu, offset, now, out),
        }
    }

    /// While the release is under way: its answer ends it; poll replies still in flight are
    /// decoded as usual (the monitor measured and sent them; nothing is dropped).
    fn handle_while_releasing(&mut self, spdu: Spdu<'_>, offset: u64, now: Timestamp, out: &mut Vec<Event>) {
        match spdu {
            Spdu::ReleaseResponse => {
                out.push(Event::Session("released"));
                self.state = State::Idle;
            }
            // Both sides released at once: answer, and it is over.
            Spdu::ReleaseRequest => {
                if let Ok(n) = session::encode_release_response(&mut self.tx) {
                    self.send(n, now, out);
                }
                out.push(Event::Session("released"));
                self.state = State::Idle;
            }
            Spdu::Abort => {
                out.push(Event::Session("aborted"));
                self.state = State::Idle;
            }
            Spdu::Data { apdu, .. } => self.handle_data(apdu, offset, now, out),
            Spdu::Connect(_) => self.unexpected(offset, "association request", out),
            Spdu::Accept(_) => self.unexpected(offset, "association result", out),
            Spdu::Refuse => self.unexpected(offset, "association refusal", out),
        }
    }

    fn handle_data(&mut self, apdu: &[u8], offset: u64, now: Timestamp, out: &mut Vec<Event>) {
        let apdu = match pdu::parse_apdu(apdu) {
            Ok(a) => a,
            Err(e) => return self.reject(offset, e, out),
        };
        match apdu {
            Apdu::Invoke { invoke_id, command: command::CONFIRMED_EVENT_REPORT, argument } => {
                self.handle_event_report(invoke_id, argument, offset, now, out)
            }
            // Requests of another client (listen-only on both lines): not ours to answer.
            Apdu::Invoke { .. } | Apdu::Result { command: command::CONFIRMED_EVENT_REPORT, .. } if self.listen_only => {}
            Apdu::Invoke { command, .. } => self.reject(offset, Error::Unsupported { what: "invoke command", value: command as u32 }, out),
            Apdu::Result { invoke_id, command: command::CONFIRMED_ACTION, result } => {
                self.handle_action_result(invoke_id, None, result, offset, now, out)
            }
            Apdu::LinkedResult { state, count, invoke_id, command: command::CONFIRMED_ACTION, result } => {
                self.handle_action_result(invoke_id, Some((state, count)), result, offset, now, out)
            }
            // The wave priority list as the monitor set it; entries it could not take are
            // dropped without a word (p. 287), so the waves that come are what was granted.
            Apdu::Result { command: command::CONFIRMED_SET, .. } if self.listen_only => {}
            Apdu::Result { invoke_id, command: command::CONFIRMED_SET, result } => match pdu::SetResult::parse(result) {
                Ok(_) => {
                    if !self.complete(invoke_id, now, out) {
                        self.unexpected(offset, "set result", out);
                    }
                }
                Err(e) => self.reject(offset, e, out),
            },
            Apdu::Result { command, .. } | Apdu::LinkedResult { command, .. } => {
                self.reject(offset, Error::Unsupported { what: "result command", value: command as u32 }, out)
            }
            Apdu::Error { invoke_id, error_value, .. } => {
                self.reject(offset, Error::Refused { reason: pdu::error_text(error_value) }, out);
                self.complete(invoke_id, now, out);
            }
        }
    }

    fn handle_event_report(&mut self, invoke_id: u16, argument: &[u8], offset: u64, now: Timestamp, out: &mut Vec<Event>) {
        let parsed = pdu::EventReport::parse(argument).and_then(|ev| {
            if ev.event_type != pdu::NOM_NOTI_MDS_CREAT {
                return Err(Error::Unsupported { what: "event type", value: ev.event_type as u32 });
            }
            Ok((ev, pdu::MdsCreateInfo::parse(ev.info)?))
        });
        let (ev, info) = match parsed {
            Ok(p) => p,
            Err(e) => return self.reject(offset, e, out),
        };
        match self.state {
            State::Listening => {
                self.absorb_mds(&info.attributes, out);
                out.push(Event::Session("associated"));
            }
            State::AwaitMdsCreate { .. } | State::Associated { .. } => {
                self.absorb_mds(&info.attributes, out);
                // Echo the event's invoke id, object, time and type (ICE `createConfirm`).
                if let Ok(n) = pdu::encode_mds_create_result(&mut self.tx, invoke_id, &ev.object, ev.time, ev.event_type) {
                    self.send(n, now, out);
                }
                if let State::AwaitMdsCreate { .. } = self.state {
                    self.enter_associated(now);
                    out.push(Event::Session("associated"));
                }
            }
            _ => self.unexpected(offset, "MDS create event", out),
        }
    }

    /// Identity and the MDS clock reference from MDS attributes (create event or MDS poll).
    fn absorb_mds(&mut self, attrs: &AttributeList<'_>, out: &mut Vec<Event>) {
        let mut id = DeviceIdentity::default();
        if let Some(m) = attrs.get(id::NOM_ATTR_ID_MODEL).and_then(|v| SystemModel::parse(v).ok()) {
            id.manufacturer = label_text(m.manufacturer).map(String::from);
            id.model = label_text(m.model_number).map(String::from);
        }
        if let Some(p) = attrs.get(id::NOM_ATTR_ID_PROD_SPECN).and_then(|v| ProductionSpec::parse(v).ok()) {
            id.serial = p.find(spec_type::SERIAL_NUMBER, ID_COMP_PRODUCT).and_then(label_text).map(String::from);
            id.firmware = p
                .find(spec_type::FW_REVISION, ID_COMP_PRODUCT)
                .or_else(|| p.find(spec_type::SW_REVISION, ID_COMP_PRODUCT))
                .and_then(label_text)
                .map(String::from);
        }
        // NOM_ATTR_SYS_ID is a VariableLabel; IntelliVue monitors send their 6-byte MAC address,
        // which is not an EUI-64 and is not turned into one. Only an 8-byte id is used.
        if let Some(label) = attrs.get(id::NOM_ATTR_SYS_ID).and_then(|v| attributes::read_variable_label(&mut Reader::new(v)).ok()) {
            if let Ok(bytes) = <[u8; 8]>::try_from(label) {
                id.eui64 = Some(Eui64(bytes));
            }
        }
        if self.identity.merge(&id) {
            out.push(Event::Identity(self.identity.clone()));
        }
        let abs = attrs.get(id::NOM_ATTR_TIME_ABS).and_then(|v| AbsoluteTime::parse(v).ok()).and_then(|t| civil_timestamp(&t));
        let rel = attrs.get(id::NOM_ATTR_TIME_REL).and_then(|v| Reader::new(v).u32().ok()).map(RelativeTime);
        if let (Some(abs), Some(rel)) = (abs, rel) {
            self.mds_time = Some(TimeBase { rel, abs });
        }
    }

    fn handle_action_result(
        &mut self,
        invoke_id: u16,
        linked_id: Option<(u8, u8)>,
        result: &[u8],
        offset: u64,
        now: Timestamp,
        out: &mut Vec<Event>,
    ) {
        if !matches!(self.state, State::Associated { .. } | State::Listening | State::Releasing { .. }) {
            return self.unexpected(offset, "poll result", out);
        }
        let reply = pdu::ActionResult::parse(result).and_then(|ar| match ar.action_type {
            action::NOM_ACT_POLL_MDIB_DATA | action::NOM_ACT_POLL_MDIB_DATA_EXT => PollReply::parse(ar.action_type, ar.body),
            other => Err(Error::Unsupported { what: "action type", value: other as u32 }),
        });
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return self.reject(offset, e, out),
        };
        // Linked results count 1, 2, 3 … within one invoke id; a skipped count is a lost part.
        let mut complete = true;
        if let Some((state, count)) = linked_id {
            let expected = match self.linked {
                Some((inv, last)) if inv == invoke_id && state != linked::FIRST => last.wrapping_add(1),
                _ => 1,
            };
            if count != expected {
                out.push(Event::SequenceGap { expected: expected as u32, found: count as u32 });
            }
            self.linked = (state != linked::LAST).then_some((invoke_id, count));
            complete = state == linked::LAST;
        } else {
            self.linked = None;
        }
        self.decode_reply(&reply, now, out);
        if complete && self.complete(invoke_id, now, out) {
            self.backoff_ms = BACKOFF_MIN_MS;
        }
    }

    fn decode_reply(&mut self, reply: &PollReply<'_>, now: Timestamp, out: &mut Vec<Event>) {
        let reply_base = civil_timestamp(&reply.abs_time).map(|abs| TimeBase { rel: reply.rel_time, abs });
        match reply.obj_type {
            super::wave::WAVES => return self.decode_waves(reply, reply_base, now, out),
            ObjectType::ALERT_MONITOR => return decode_alarms(reply, out),
            ObjectType::PATIENT_DEMOGRAPHICS => return decode_demographics(reply, out),
            _ => {}
        }
        let is_mds = reply.obj_type == ObjectType::MDS;
        for obs in reply.info.observations() {
            // The reply was validated as a whole in `PollReply::parse`.
            let Ok((_context, obs)) = obs else { continue };
            if is_mds {
                self.absorb_mds(&obs.attributes, out);
                continue;
            }
            let base = reply_base.or(self.mds_time);
            let time = observation_time(&obs.attributes, reply.rel_time, base).map(DeviceTime::Local);
            for ava in obs.attributes.iter().flatten() {
                match ava.id {
                    id::NOM_ATTR_NU_VAL_OBS => match NuObsValue::parse(ava.value) {
                        Ok(nu) => out.push(Event::Measurement(numeric(&nu, time))),
                        Err(e) => out.push(Event::Rejected { offset: 0, error: e }),
                    },
                    id::NOM_ATTR_NU_CMPD_VAL_OBS => match NuObsValueCmp::parse(ava.value) {
                        Ok(cmp) => compound(&cmp, time, out),
                        Err(e) => out.push(Event::Rejected { offset: 0, error: e }),
                    },
                    _ => {}
                }
            }
        }
    }
}

impl Session {
    /// Wave objects: placed on the gateway's clock by the MDS clock pair (125 us ticks, set at
    /// association), else by the reply's own pair, else the reply counts as received now.
    fn decode_waves(&mut self, reply: &PollReply<'_>, reply_base: Option<TimeBase>, now: Timestamp, out: &mut Vec<Event>) {
        let base = self.mds_time.or(reply_base).unwrap_or(TimeBase { rel: reply.rel_time, abs: now });
        let mut chunks = Vec::new();
        let r = self.rtsa.poll_result(reply, |rel| base.at(rel), &mut chunks);
        out.extend(chunks.into_iter().map(|c| Event::Wave(Box::new(c))));
        if let Err(e) = r {
            out.push(Event::Rejected { offset: 0, error: e });
        }
    }
}

/// The alert monitor's lists: one report per list present, complete for its scope.
fn decode_alarms(reply: &PollReply<'_>, out: &mut Vec<Event>) {
    for obs in reply.info.observations() {
        let Ok((_context, obs)) = obs else { continue };
        for ava in obs.attributes.iter().flatten() {
            if !matches!(ava.id, alarms::NOM_ATTR_AL_MON_P_AL_LIST | alarms::NOM_ATTR_AL_MON_T_AL_LIST) {
                continue;
            }
            match alarms::list_report(ava.id, ava.value) {
                Ok(report) => out.push(Event::Alarms(report)),
                Err(e) => out.push(Event::Rejected { offset: 0, error: e }),
            }
        }
    }
}

/// The demographics object: the patient id, when the monitor has an admitted patient with one.
fn decode_demographics(reply: &PollReply<'_>, out: &mut Vec<Event>) {
    for obs in reply.info.observations() {
        let Ok((_context, obs)) = obs else { continue };
        match demographics::patient(&obs.attributes) {
            Ok(demographics::PatientReport::Id(id)) => out.push(Event::PatientId(id)),
            Ok(demographics::PatientReport::None) => {}
            Err(e) => out.push(Event::Rejected { offset: 0, error: e }),
        }
    }
}

/// The next instant of a period that was due at `due`: one period on, or one period after
/// `now` when the client fell behind (no burst of catch-up requests).
fn next_period(due: Timestamp, period_ms: i64, now: Timestamp) -> Timestamp {
    let next = after(due, period_ms);
    if next <= now {
        after(now, period_ms)
    } else {
        next
    }
}

/// The time of one observation: its own absolute time stamp, else its relative time stamp (or
/// the reply's relative time) placed by the reference pair.
fn observation_time(attrs: &AttributeList<'_>, reply_rel: RelativeTime, base: Option<TimeBase>) -> Option<Timestamp> {
    if let Some(t) = attrs.get(id::NOM_ATTR_TIME_STAMP_ABS).and_then(|v| AbsoluteTime::parse(v).ok()).and_then(|t| civil_timestamp(&t)) {
        return Some(t);
    }
    let rel = attrs.get(id::NOM_ATTR_TIME_STAMP_REL).and_then(|v| Reader::new(v).u32().ok()).map(RelativeTime).unwrap_or(reply_rel);
    base.map(|b| b.at(rel))
}

/// The value of a NuObsValue: the FLOAT's number unless the state says unavailable; the
/// specials (NaN, NRes, ±INF, reserved) are never numbers.
fn scalar(nu: &NuObsValue) -> Result<crate::decimal::Decimal, AbsentReason> {
    match float(nu.value).to_result() {
        Ok(_) if nu.state.has(MeasurementState::UNAVAILABLE) => Err(AbsentReason::Unavailable),
        r => r,
    }
}

fn out_of_range(nu: &NuObsValue) -> Flags {
    match float(nu.value) {
        FloatValue::PositiveInfinity | FloatValue::NegativeInfinity => Flags::OUT_OF_RANGE,
        _ => Flags::NONE,
    }
}

fn unit_flags(unit_code: u16) -> Flags {
    if unit_code >= nomenclature::PRIVATE_TERM {
        Flags::UNMAPPED
    } else {
        Flags::NONE
    }
}

/// One NuObsValue as a measurement.
fn numeric(nu: &NuObsValue, time: Option<DeviceTime>) -> Measurement {
    let unit = nomenclature::unit(nu.unit_code);
    let mapped = nomenclature::metric(nu.physio_id);
    let metric = mapped.unwrap_or(MdcCode::UNMAPPED);
    let mut m = match scalar(nu) {
        Ok(d) => Measurement::numeric(metric, d, unit),
        Err(reason) => Measurement::absent(metric, reason, unit),
    };
    m.flags |= nu.state.flags() | out_of_range(nu) | unit_flags(nu.unit_code);
    m.status = nu.state.status();
    m.device_time = time;
    if mapped.is_none() {
        m = m.with_vendor(NAMESPACE, format!("{}", nu.physio_id)).with_flags(Flags::UNMAPPED);
    }
    m
}

/// A NuObsValueCmp: one compound measurement when all members belong to a known pressure
/// family (NIBP, ABP, ART, PAP, CVP), else one measurement per member.
fn compound(cmp: &NuObsValueCmp<'_>, time: Option<DeviceTime>, out: &mut Vec<Event>) {
    let parent = cmp.iter().next().and_then(|m| nomenclature::compound_parent(m.physio_id));
    let same_family = parent.is_some() && cmp.iter().all(|m| nomenclature::compound_parent(m.physio_id) == parent);
    let (Some(parent), true) = (parent, same_family) else {
        for nu in cmp.iter() {
            out.push(Event::Measurement(numeric(&nu, time)));
        }
        return;
    };
    let mut components = Vec::with_capacity(cmp.len());
    let mut flags = Flags::NONE;
    let mut status = Status::Final;
    let mut unit = None;
    let mut all_absent = true;
    for nu in cmp.iter() {
        let value = match scalar(&nu) {
            Ok(d) => {
                all_absent = false;
                Scalar::Numeric(d)
            }
            Err(r) => Scalar::Absent(r),
        };
        components.push(Component { metric: nomenclature::metric(nu.physio_id).unwrap_or(MdcCode::UNMAPPED), value });
        flags |= nu.state.flags() | out_of_range(&nu) | unit_flags(nu.unit_code);
        if nu.state.status() == Status::Preliminary {
            status = Status::Preliminary;
        }
        unit.get_or_insert(nu.unit_code);
    }
    if all_absent {
        flags |= Flags::UNAVAILABLE;
    }
    out.push(Event::Measurement(Measurement {
        metric: parent,
        vendor: None,
        value: Value::Compound(components.into()),
        unit: nomenclature::unit(unit.unwrap_or(0)),
        device_time: time,
        seq: None,
        flags,
        status,
    }));
}

impl Decoder for IntelliVueClient {
    fn protocol(&self) -> &'static str {
        "intellivue"
    }

    fn feed(&mut self, bytes: &[u8], now: Timestamp, out: &mut Vec<Event>) {
        let IntelliVueClient { rx, s } = self;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (n, event) = rx.feed(rest);
            rest = rest.get(n..).unwrap_or(&[]);
            match event {
                FrameEvent::Pending => {}
                FrameEvent::Rejected { offset, error } => out.push(Event::Rejected { offset, error }),
                FrameEvent::Frame { user_data, offset } => {
                    let mark = out.len();
                    s.handle_frame(user_data, offset, now, out);
                    // Value-level errors inside a decoded reply carry the frame's offset.
                    for e in out.iter_mut().skip(mark) {
                        if let Event::Rejected { offset: o @ 0, .. } = e {
                            *o = offset;
                        }
                    }
                }
            }
        }
    }

    fn start(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.rx.clear();
        self.s.linked = None;
        self.s.backoff_ms = BACKOFF_MIN_MS;
        if self.s.listen_only {
            self.s.state = State::Listening;
        } else {
            self.s.send_aarq(now, out);
        }
    }

    fn poll(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.s.timers(now, out);
    }

    fn next_wakeup(&self) -> Option<Timestamp> {
        self.s.next_wakeup()
    }

    fn sends_requests(&self) -> bool {
        !self.s.listen_only
    }

    fn release(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.s.release(now, out);
    }

    fn releasing(&self) -> bool {
        matches!(self.s.state, State::Releasing { .. })
    }

    fn abort(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.s.abort(now, out);
    }

    fn session_state(&self) -> Option<&'static str> {
        Some(self.s.state.session())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mdc::{code, unit};
    use crate::wire::intellivue::attributes::Ava;
    use crate::wire::intellivue::Writer;
    use alloc::string::ToString;

    fn nu(physio_id: u16, state: u16, unit_code: u16, value: u32) -> NuObsValue {
        NuObsValue { physio_id, state: MeasurementState(state), unit_code, value }
    }

    #[test]
    fn connection_timeout_rule() {
        assert_eq!(connection_timeout_ms(1_000), 10_000);
        assert_eq!(connection_timeout_ms(3_300), 10_000);
        assert_eq!(connection_timeout_ms(10_000), 30_000);
        assert_eq!(connection_timeout_ms(60_000), 130_000);
        assert_eq!(keep_alive_for(1_000), 9_000);
    }

    #[test]
    fn pp3_spo2_is_97_percent() {
        let m = numeric(&nu(0x4BB8, 0, 0x0220, 0x0000_0061), None);
        assert_eq!(m.metric, code::MDC_PULS_OXIM_SAT_O2);
        assert_eq!(m.unit, unit::MDC_DIM_PERCENT);
        assert_eq!(m.value.numeric().unwrap().to_string(), "97");
        assert_eq!(m.flags, Flags::NONE);
        assert_eq!(m.status, Status::Final);
    }

    #[test]
    fn specials_and_states_are_never_numbers() {
        // PP-4 NaN: absent, unavailable.
        let m = numeric(&nu(0x4BB8, 0, 0x0220, 0x007F_FFFF), None);
        assert_eq!(m.value.absent_reason(), Some(AbsentReason::NotANumber));
        assert!(m.flags.contains(Flags::UNAVAILABLE));
        let m = numeric(&nu(0x4BB8, 0, 0x0220, 0x007F_FFFE), None);
        assert_eq!(m.value.absent_reason(), Some(AbsentReason::PositiveInfinity));
        assert!(m.flags.contains(Flags::OUT_OF_RANGE));
        // A number the monitor calls unavailable is not published as a number.
        let m = numeric(&nu(0x4BB8, MeasurementState::UNAVAILABLE, 0x0220, 97), None);
        assert_eq!(m.value.absent_reason(), Some(AbsentReason::Unavailable));
        // Invalid and demo keep the number, flagged.
        let m = numeric(&nu(0x4BB8, MeasurementState::INVALID | MeasurementState::DEMO_DATA, 0x0220, 97), None);
        assert_eq!(m.value.numeric().unwrap().to_string(), "97");
        assert!(m.flags.contains(Flags::INVALID | Flags::DEMO));
        let m = numeric(&nu(0x4BB8, MeasurementState::MSMT_ONGOING, 0x0220, 97), None);
        assert_eq!(m.status, Status::Preliminary);
    }

    #[test]
    fn unknown_physio_ids_are_kept_with_their_vendor_code() {
        let m = numeric(&nu(61_669, 0, 0x0AA0, 72), None);
        assert_eq!(m.metric, MdcCode::UNMAPPED);
        assert!(m.flags.contains(Flags::UNMAPPED));
        let v = m.vendor.unwrap();
        assert_eq!((v.namespace.as_ref(), v.code.as_ref()), ("intellivue", "61669"));
        assert_eq!(m.value.numeric().unwrap().to_string(), "72");
        // A private unit: unit unmapped and flagged, metric kept.
        let m = numeric(&nu(0x4BB8, 0, 0xF001, 97), None);
        assert_eq!(m.unit, MdcCode::UNMAPPED);
        assert!(m.flags.contains(Flags::UNMAPPED));
        assert_eq!(m.metric, code::MDC_PULS_OXIM_SAT_O2);
    }

    fn cmp_bytes(vals: &[NuObsValue]) -> Vec<u8> {
        let mut buf = [0u8; 128];
        let mut w = Writer::new(&mut buf);
        NuObsValueCmp::write(vals, &mut w).unwrap();
        let n = w.len();
        buf[..n].to_vec()
    }

    #[test]
    fn nibp_is_one_compound_measurement() {
        let mmhg = 0x0F20;
        let bytes = cmp_bytes(&[nu(18949, 0, mmhg, 120), nu(18950, 0, mmhg, 80), nu(18951, 0, mmhg, 93)]);
        let mut out = Vec::new();
        compound(&NuObsValueCmp::parse(&bytes).unwrap(), None, &mut out);
        assert_eq!(out.len(), 1);
        let Event::Measurement(m) = &out[0] else { panic!() };
        assert_eq!(m.metric, code::MDC_PRESS_BLD_NONINV);
        assert_eq!(m.unit, unit::MDC_DIM_MMHG);
        let Value::Compound(c) = &m.value else { panic!() };
        let got: Vec<(MdcCode, String)> = c
            .iter()
            .map(|c| {
                (
                    c.metric,
                    match &c.value {
                        Scalar::Numeric(d) => d.to_string(),
                        Scalar::Absent(_) => "-".into(),
                    },
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (code::MDC_PRESS_BLD_NONINV_SYS, "120".to_string()),
                (code::MDC_PRESS_BLD_NONINV_DIA, "80".to_string()),
                (code::MDC_PRESS_BLD_NONINV_MEAN, "93".to_string())
            ]
        );
        // All NaN: the compound says unavailable; a mixed private family splits into members.
        let bytes = cmp_bytes(&[nu(18965, 0x8000, mmhg, 0x007F_FFFF), nu(18966, 0x8000, mmhg, 0x007F_FFFF)]);
        let mut out = Vec::new();
        compound(&NuObsValueCmp::parse(&bytes).unwrap(), None, &mut out);
        let Event::Measurement(m) = &out[0] else { panic!() };
        assert_eq!(m.metric, code::MDC_PRESS_BLD_ART_ABP);
        assert!(m.flags.contains(Flags::UNAVAILABLE | Flags::INVALID));
        let bytes = cmp_bytes(&[nu(61_605, 0, mmhg, 120), nu(61_606, 0, mmhg, 80)]);
        let mut out = Vec::new();
        compound(&NuObsValueCmp::parse(&bytes).unwrap(), None, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|e| matches!(e, Event::Measurement(m) if m.metric.is_unmapped() && m.vendor.is_some())));
    }

    #[test]
    fn observation_times() {
        let base = TimeBase { rel: RelativeTime(80_000), abs: Timestamp(1_710_498_125_000) };
        // No stamps: the reply's instant.
        assert_eq!(observation_time(&AttributeList::EMPTY, RelativeTime(80_000), Some(base)), Some(base.abs));
        // A relative stamp 30 s earlier (240000 ticks).
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        attributes::write_attribute_list(&mut w, 1, |w| {
            attributes::write_ava(w, id::NOM_ATTR_TIME_STAMP_REL, |w| w.u32(80_000u32.wrapping_sub(240_000)))
        })
        .unwrap();
        let n = w.len();
        let l = AttributeList::parse(&buf[..n]).unwrap();
        assert_eq!(
            l.iter().next().unwrap().unwrap(),
            Ava { id: id::NOM_ATTR_TIME_STAMP_REL, value: &(80_000u32.wrapping_sub(240_000)).to_be_bytes() }
        );
        assert_eq!(observation_time(&l, RelativeTime(80_000), Some(base)), Some(Timestamp(base.abs.0 - 30_000)));
        // No reference at all: no time.
        assert_eq!(observation_time(&l, RelativeTime(80_000), None), None);
    }
}
