//! The one error type of `medgw-protocols`.
//!
//! Every parser, decoder, state machine and encoder in this crate returns [`Error`]. Variants name
//! the cause and carry the offending value, so a log line or `medgw decode` report says what was
//! wrong without a debugger (`BadChecksum { expected, found }`, not "invalid frame").

/// Why bytes were rejected or a value could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The frame's checksum, CRC or FCS does not match its content.
    #[error("bad checksum: expected {expected:#x}, found {found:#x}")]
    BadChecksum { expected: u32, found: u32 },
    /// Fewer bytes than the format needs.
    #[error("truncated: needed {needed} bytes, got {got}")]
    Truncated { needed: usize, got: usize },
    /// A declared or accumulated length exceeds the bound the decoder keeps.
    #[error("frame too long: more than {max} bytes")]
    TooLong { max: usize },
    /// Bytes that are not part of any frame were skipped while resynchronising.
    #[error("{skipped} bytes of garbage skipped")]
    Garbage { skipped: usize },
    /// A field holds a value the format does not allow.
    #[error("bad {field}: {value:#x}")]
    BadField { field: &'static str, value: u32 },
    /// A text field is not in the format the protocol defines.
    #[error("bad text in {field}")]
    BadText { field: &'static str },
    /// A message or code that is valid on the wire but not handled by medgw.
    #[error("unsupported {what}: {value:#x}")]
    Unsupported { what: &'static str, value: u32 },
    /// A message arrived that the protocol's state does not allow.
    #[error("unexpected {got} while {state}")]
    UnexpectedMessage { state: &'static str, got: &'static str },
    /// The peer did not answer in time.
    #[error("timeout waiting for {waiting_for}")]
    Timeout { waiting_for: &'static str },
    /// The peer refused, aborted or negatively acknowledged.
    #[error("refused by device: {reason}")]
    Refused { reason: &'static str },
    /// Sequence numbers skipped: frames were lost between device and gateway.
    #[error("sequence gap: expected {expected}, found {found}")]
    SequenceGap { expected: u32, found: u32 },
    /// A postcard payload could not be decoded or encoded.
    #[error("payload: {0}")]
    Payload(&'static str),
    /// An output buffer is too small for what must be written into it.
    #[error("output buffer too small: need {needed} bytes")]
    BufferTooSmall { needed: usize },
    /// A well-formed field holds a value the device cannot measure or send: on a format without
    /// a checksum this is how noise or a misaligned frame shows itself.
    #[error("implausible {field}: {value}")]
    Implausible { field: &'static str, value: u32 },
    /// Well-formed frames that were held until the decoder confirmed its lock on the stream, and
    /// were dropped because the stream broke before it did.
    #[error("{frames} frame(s) not confirmed by a lock on the stream")]
    Unconfirmed { frames: usize },
    /// Frames arrived faster than the device sends them: a wrong protocol or a noisy line.
    #[error("frames arrive faster than the limit of {per_s} per second")]
    RateExceeded { per_s: u32 },
}

impl Error {
    /// A short stable name for the cause, used as a metrics label and in `medgw decode` output.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::BadChecksum { .. } => "bad-checksum",
            Error::Truncated { .. } => "truncated",
            Error::TooLong { .. } => "too-long",
            Error::Garbage { .. } => "garbage",
            Error::BadField { .. } => "bad-field",
            Error::BadText { .. } => "bad-text",
            Error::Unsupported { .. } => "unsupported",
            Error::UnexpectedMessage { .. } => "unexpected-message",
            Error::Timeout { .. } => "timeout",
            Error::Refused { .. } => "refused",
            Error::SequenceGap { .. } => "sequence-gap",
            Error::Payload(_) => "payload",
            Error::BufferTooSmall { .. } => "buffer-too-small",
            Error::Implausible { .. } => "implausible",
            Error::Unconfirmed { .. } => "unconfirmed",
            Error::RateExceeded { .. } => "rate-exceeded",
        }
    }
}

pub type Result<T> = core::result::Result<T, Error>;
