//! The interface every device protocol presents to the gateway: bytes in, events out.
//!
//! A [`Decoder`] is sans-IO (style.md, habits 1–3): the caller feeds whatever bytes arrived, in
//! any chunking, with the current time; the decoder returns measurements, identity facts, typed
//! rejections with the byte offset of the bad frame, and, for request/response protocols, the
//! bytes to send. It never sleeps, reads a clock or does I/O, and its buffers are bounded, so a
//! device that streams garbage costs a bounded amount of memory and CPU.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::error::Error;
use crate::observation::{DeviceIdentity, Measurement};
use crate::serial::SerialSettings;
use crate::time::Timestamp;
use crate::wave::WaveChunk;

/// What a decoder produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A value the device reported.
    Measurement(Measurement),
    /// Something the device said about itself (serial number, EUI-64, model, firmware).
    Identity(DeviceIdentity),
    /// Bytes that could not be decoded: `offset` is the stream offset (bytes fed since the
    /// decoder was created) of the first byte of the rejected frame.
    Rejected { offset: u64, error: Error },
    /// Bytes to write to the device (requests, acknowledgements, keep-alives).
    Transmit(Vec<u8>),
    /// The device's sequence numbers jumped: readings between were lost before the gateway.
    SequenceGap { expected: u32, found: u32 },
    /// A protocol session state change worth an event (`associated`, `released`, ...).
    Session(&'static str),
    /// The bytes do not look like this protocol: well-formed frames that never line up into a
    /// confirmed lock, or more of them than the device can send. Either the device speaks
    /// another protocol (or data format) than the one configured, or the line is noisy. Sent
    /// once when the condition starts, not per frame; values stay withheld until the decoder
    /// locks on again. The text says which test failed.
    NoisyLine(&'static str),
    /// Wave samples of one metric (pleth, ECG, ...) in the order the device sent them; the
    /// gateway cuts them into segments with [`crate::wave::Segmenter`]. Boxed: a chunk is
    /// larger than the other events, and decoders move many events.
    Wave(Box<WaveChunk>),
    /// The alarm conditions the device reports active now, complete for the report's scope
    /// (see [`crate::alarm`]): feed it to the device's [`crate::alarm::AlarmTracker`]. Stream
    /// decoders send a report when the set changes and after every (re)start, not with every
    /// frame; polled protocols (MEDIBUS) with every answer to their alarm request.
    Alarms(crate::alarm::AlarmReport),
    /// The patient id the device holds for its patient (IntelliVue patient demographics),
    /// reported with every answer while the device has an admitted patient with an id. The
    /// gateway checks it against the bed's ADT patient (docs/adt.md): a disagreement holds the
    /// readings back from any patient. An identifier of a person: never logged at info level.
    PatientId(alloc::string::String),
}

/// A device protocol's decoder or session state machine.
pub trait Decoder: Send {
    /// The protocol name as used in configuration and `medgw decode --protocol`.
    fn protocol(&self) -> &'static str;

    /// Feeds bytes received from the device at `now`.
    fn feed(&mut self, bytes: &[u8], now: Timestamp, out: &mut Vec<Event>);

    /// Called when the connection to the device opens (and again after every reconnect). A
    /// request/response protocol emits its opening request here; stream decoders drop any
    /// partial frame, since bytes before a reconnect do not continue after it.
    fn start(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let _ = (now, out);
    }

    /// Called at or after [`Decoder::next_wakeup`]: polls, keep-alives and timeouts happen here.
    fn poll(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let _ = (now, out);
    }

    /// When the decoder next needs [`Decoder::poll`]; `None` for pure stream decoders.
    fn next_wakeup(&self) -> Option<Timestamp> {
        None
    }

    /// The gateway is stopping while the connection is open. A protocol with a session ends it
    /// the way the device expects (IntelliVue: the association release request), so the device
    /// does not hold the session for its time-out and refuse the next one. While
    /// [`Decoder::releasing`] is true the gateway goes on feeding the device's answer, for a
    /// bounded time.
    fn release(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let _ = (now, out);
    }

    /// True while a release waits for the device's answer.
    fn releasing(&self) -> bool {
        false
    }

    /// The connection is about to be dropped for an error (a failed write, silence): a protocol
    /// with a session tells the device it is over (IntelliVue: abort), best effort, so that a
    /// device still listening frees it at once.
    fn abort(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let _ = (now, out);
    }

    /// The protocol session's state for the status page (IntelliVue: `associating`,
    /// `associated`, `refused`, ...); `None` for protocols without a session, whose state is
    /// the connection's.
    fn session_state(&self) -> Option<&'static str> {
        None
    }

    /// Whether this protocol sends requests. Listen-only installs (Y-cables, where another
    /// system owns the device's requests) refuse such protocols unless they offer a passive mode.
    fn sends_requests(&self) -> bool {
        false
    }
}

/// Options a decoder is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderOptions {
    /// Poll period for protocols that poll (IntelliVue extended poll, MEDIBUS data request).
    pub poll_period_ms: u32,
    /// Never transmit: decode what another system's requests make the device say.
    pub listen_only: bool,
    /// The most frames per second a decoder with a rate gate accepts (see [`crate::lock`]);
    /// `None` is the protocol's own limit, set from the rate its device sends at. Raised for
    /// simulators run faster than a real device, and for byte streams read from a file, whose
    /// receipt times are not the device's.
    pub max_frame_rate: Option<u32>,
    /// IntelliVue: the waves to poll, by physio id (`wire::intellivue::wave::physio_by_name`),
    /// at most 11. Empty (the default): no wave poll, the association asks for numerics only.
    pub waves: Vec<u16>,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions { poll_period_ms: 1000, listen_only: false, max_frame_rate: None, waves: Vec::new() }
    }
}

/// A constructor in the protocol registry.
pub type MakeDecoder = fn(&DecoderOptions) -> Box<dyn Decoder>;

/// One row of the protocol registry.
#[derive(Clone, Copy)]
pub struct ProtocolInfo {
    pub name: &'static str,
    pub description: &'static str,
    /// The serial line the device uses by default (`None`: not a serial protocol).
    pub serial: Option<SerialSettings>,
    /// `true` when the input is one GATT characteristic value per call (not a byte stream).
    pub gatt: bool,
    pub make: MakeDecoder,
}

/// Registry rows are told apart by name (names are unique: `registry` tests it), so a
/// configuration holding a `&'static ProtocolInfo` can be compared.
impl PartialEq for ProtocolInfo {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ProtocolInfo {}

impl core::fmt::Debug for ProtocolInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ProtocolInfo").field("name", &self.name).finish()
    }
}

/// `out.push(ev)`, written so that the compiler stores the event's fields straight into the
/// vector. With a plain `push`, the possible reallocation sits between building the event and
/// storing it, so the event is first built on the stack, field by field, and then copied in 16
/// bytes at a time; the first copy reads back stores still in flight, which the CPU cannot
/// forward (a load spanning several smaller stores), and that stall took 25–40 % of the
/// heart-rate and PLX decoders' time (perf annotate). Behind a known-free slot there is nothing
/// between building and storing, and the copy disappears. The caller's vector is reused
/// across values, so the slow path is rare.
#[inline(always)]
pub(crate) fn push_event(out: &mut Vec<Event>, ev: Event) {
    if out.len() < out.capacity() {
        out.push(ev)
    } else {
        push_grow(out, ev)
    }
}

#[cold]
#[inline(never)]
fn push_grow(out: &mut Vec<Event>, ev: Event) {
    out.push(ev)
}
