//! The messages of the medgw link, as postcard encodes them.
//!
//! The byte layout is postcard wire format v1 (postcard specification, "Wire format"): an enum is
//! its variant index as a varint, then the variant's fields in declaration order; `u8`/`i8` are one
//! byte; `u32`/`u64` are LEB128 varints; `i32`/`i64` are zigzag-then-varint; `[u8; 8]` is 8 bytes
//! with no length; strings and sequences are a varint length then their elements.
//!
//! The order of variants and fields is therefore the protocol: never reorder them, only append.
//!
//! ```text
//!  index  message        direction          fields
//!  0      Hello          node -> gateway    version u8 (=1), eui64 [u8;8], model str<=16,
//!                                           firmware str<=16, boot_id u32
//!  1      Observations   node -> gateway    seq u32, boot_id u32, items seq<=8 of LinkObservation
//!  2      TimeRequest    node -> gateway    uptime_ms u64
//!  3      TimeSync       gateway -> node    utc_ms i64, echo_uptime_ms u64
//!  4      Ack            gateway -> node    boot_id u32, seq u32
//!  5      HelloRequest   gateway -> node    (none)
//!
//!  LinkObservation: metric u32 (MDC), unit u32 (MDC), value LinkValue, time_ms i64, flags u32
//!  LinkValue:       0 Numeric { mantissa i32, exponent i8 }  |  1 Absent(u8 reason index)
//! ```

use serde::{Deserialize, Serialize};

use crate::quality::{AbsentReason, Flags};

/// The link version a node announces in [`Message::Hello`].
pub const LINK_VERSION: u8 = 1;

/// Observations per batch: 8 items keep a batch (about 20 bytes per item) inside one frame.
pub const MAX_ITEMS: usize = 8;

/// Capacity of the model and firmware strings in [`Message::Hello`].
pub const TEXT_LEN: usize = 16;

/// A value on the link: a decimal number as measured, or why there is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkValue {
    /// `mantissa × 10^exponent`, so the node says `36.8` and not `36.799999`.
    Numeric { mantissa: i32, exponent: i8 },
    /// No value; the byte is an [`AbsentReason`] index (see [`absent_index`]).
    Absent(u8),
}

/// One observation a node made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkObservation {
    /// IEEE 11073-10101 metric code (partition << 16 | term).
    pub metric: u32,
    /// IEEE 11073-10101 unit code (partition 4).
    pub unit: u32,
    pub value: LinkValue,
    /// UTC ms since the epoch once the node's clock was synchronised; before that the node's
    /// uptime in ms, with [`Flags::CLOCK_NOT_SET`] set in `flags`.
    pub time_ms: i64,
    /// [`Flags`] bits.
    pub flags: u32,
}

/// Everything that crosses the link.
// A batch is held inline (about 270 bytes): the node has no heap to box it in.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The node's identity, sent at boot and in answer to [`Message::HelloRequest`]. After a Hello
    /// the node resends from its oldest unacknowledged batch (see the module docs of `link`).
    Hello {
        version: u8,
        eui64: [u8; 8],
        model: heapless::String<TEXT_LEN>,
        firmware: heapless::String<TEXT_LEN>,
        /// Random per boot: sequence numbers restart with it.
        boot_id: u32,
    },
    /// A batch of observations; `seq` counts batches from 0 within one boot.
    Observations { seq: u32, boot_id: u32, items: heapless::Vec<LinkObservation, MAX_ITEMS> },
    /// The node asks for the time; `uptime_ms` is its uptime when it sent the request.
    TimeRequest { uptime_ms: u64 },
    /// The gateway's UTC time when it answered, with the request's uptime echoed so the node can
    /// take half the round trip as the transit delay (as NTP does, RFC 5905 §8).
    TimeSync { utc_ms: i64, echo_uptime_ms: u64 },
    /// Cumulative: every batch of `boot_id` up to and including `seq` is durably accepted.
    Ack { boot_id: u32, seq: u32 },
    /// The gateway asks the node for a [`Message::Hello`].
    HelloRequest,
}

impl Message {
    /// The variant's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Observations { .. } => "Observations",
            Message::TimeRequest { .. } => "TimeRequest",
            Message::TimeSync { .. } => "TimeSync",
            Message::Ack { .. } => "Ack",
            Message::HelloRequest => "HelloRequest",
        }
    }
}

/// The link's numbering of [`AbsentReason`]: fixed here, independent of the Rust enum's order.
const ABSENT_REASONS: [AbsentReason; 7] = [
    AbsentReason::Unavailable,
    AbsentReason::NotANumber,
    AbsentReason::NotAtThisResolution,
    AbsentReason::PositiveInfinity,
    AbsentReason::NegativeInfinity,
    AbsentReason::Reserved,
    AbsentReason::Error,
];

/// The wire index of an absent reason.
pub fn absent_index(reason: AbsentReason) -> u8 {
    match reason {
        AbsentReason::Unavailable => 0,
        AbsentReason::NotANumber => 1,
        AbsentReason::NotAtThisResolution => 2,
        AbsentReason::PositiveInfinity => 3,
        AbsentReason::NegativeInfinity => 4,
        AbsentReason::Reserved => 5,
        AbsentReason::Error => 6,
    }
}

/// The absent reason of a wire index; `None` for an index this version does not define.
pub fn absent_from_index(index: u8) -> Option<AbsentReason> {
    ABSENT_REASONS.get(index as usize).copied()
}

impl LinkObservation {
    /// A numeric observation.
    pub fn numeric(metric: u32, unit: u32, mantissa: i32, exponent: i8, time_ms: i64, flags: Flags) -> LinkObservation {
        LinkObservation { metric, unit, value: LinkValue::Numeric { mantissa, exponent }, time_ms, flags: flags.0 }
    }

    /// "No value", with the reason; adds [`Flags::UNAVAILABLE`] as the canonical model does.
    pub fn absent(metric: u32, unit: u32, reason: AbsentReason, time_ms: i64, flags: Flags) -> LinkObservation {
        LinkObservation { metric, unit, value: LinkValue::Absent(absent_index(reason)), time_ms, flags: (flags | Flags::UNAVAILABLE).0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_reason_indices_round_trip() {
        for (i, r) in ABSENT_REASONS.iter().enumerate() {
            assert_eq!(absent_index(*r) as usize, i);
            assert_eq!(absent_from_index(i as u8), Some(*r));
        }
        assert_eq!(absent_from_index(7), None);
        assert_eq!(absent_from_index(0xFF), None);
    }
}
