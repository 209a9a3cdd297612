//! HL7 v2 messages as a hospital sends them to medgw: the ADT feed (issue 14).
//!
//! ```text
//! MSH|^~\&|ADT|HOSP|MEDGW|ICU|20261125101500||ADT^A02^ADT_A02|ADT0001|P|2.5   MSH-1 '|', MSH-2 encoding chars
//! EVN|A02|20261125101500|||RN01|20261125101000                                 EVN-2 recorded, EVN-6 occurred
//! PID|||MRN12345^^^HOSP&1.2.3.4.5&ISO^MR||Doe^John                              PID-3 CX list, PID-5 name
//! PV1|1|I|4E^136^B^HOSP|||ICU^12^A^HOSP|...|V98765^^^HOSP^VN                    PV1-3 / PV1-6 PL, PV1-19 visit
//! ```
//! Layers, as in the rest of the crate: [`message`] splits the ER7 text (HL7 v2.5 §2.5–2.7:
//! segments, fields, repetitions, components, subcomponents, escape sequences, the delimiters
//! read from MSH-1/MSH-2); [`datatypes`] reads CX, HD, PL, XPN and TS/DTM; [`adt`] is the view the
//! association state machine needs; [`ack`] writes the acknowledgement. MLLP framing is
//! [`crate::encode::mllp`] (shared with the PCD-01 sender).
//!
//! Errors are [`Hl7Error`], not the crate's [`crate::Error`]: an HL7 receiver must answer every
//! rejection with an HL7 table 0357 code and the segment/field it concerns, and those belong to
//! this boundary only.

pub mod ack;
pub mod adt;
pub mod datatypes;
pub mod delivery;
pub mod message;

use alloc::string::String;

pub use ack::{AckCode, AckError};
pub use adt::{AdtEvent, AdtMessage, AdtPatient, Header, Version, Visit};
pub use datatypes::{Cx, Hd, Pl, Xpn};
pub use delivery::{AckMode, DeliveryConfig, DeliverySession};
pub use message::{Delimiters, Field, Message, Segment};

/// Why an HL7 message was rejected. Every variant maps to an HL7 table 0357 code for the ACK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Hl7Error {
    #[error("empty message")]
    Empty,
    #[error("message does not start with an MSH segment")]
    MissingMsh,
    #[error("bad encoding characters in MSH-1/MSH-2")]
    BadEncodingCharacters,
    #[error("message text is neither UTF-8 nor the ISO 8859-1 that MSH-18 declares")]
    BadCharset,
    #[error("bad segment id {id:?}")]
    BadSegmentId { id: String },
    #[error("bad escape sequence in {segment}-{field}")]
    BadEscape { segment: &'static str, field: u16 },
    #[error("{segment}-{field} is required")]
    MissingField { segment: &'static str, field: u16 },
    #[error("segment {segment} is required")]
    MissingSegment { segment: &'static str },
    #[error("bad {segment}-{field}: {what}")]
    BadValue { segment: &'static str, field: u16, what: &'static str },
    #[error("unsupported HL7 version {version:?} (2.3 to 2.6 are accepted)")]
    UnsupportedVersion { version: String },
    #[error("unsupported message type {message_type:?}")]
    UnsupportedMessageType { message_type: String },
    #[error("unsupported event {event:?}")]
    UnsupportedEvent { event: String },
}

impl Hl7Error {
    /// The HL7 table 0357 code an ACK carries for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Hl7Error::Empty | Hl7Error::MissingMsh | Hl7Error::BadSegmentId { .. } | Hl7Error::MissingSegment { .. } => {
                ErrorCode::SegmentSequenceError
            }
            Hl7Error::BadEncodingCharacters | Hl7Error::BadCharset | Hl7Error::BadEscape { .. } | Hl7Error::BadValue { .. } => {
                ErrorCode::DataTypeError
            }
            Hl7Error::MissingField { .. } => ErrorCode::RequiredFieldMissing,
            Hl7Error::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersionId,
            Hl7Error::UnsupportedMessageType { .. } => ErrorCode::UnsupportedMessageType,
            Hl7Error::UnsupportedEvent { .. } => ErrorCode::UnsupportedEventCode,
        }
    }

    /// The segment and field the error concerns, for ERR-2 (v2.5+) or ERR-1 (v2.3/2.4).
    pub fn location(&self) -> Option<(&'static str, u16)> {
        match self {
            Hl7Error::BadEscape { segment, field }
            | Hl7Error::MissingField { segment, field }
            | Hl7Error::BadValue { segment, field, .. } => Some((segment, *field)),
            Hl7Error::MissingSegment { segment } => Some((segment, 0)),
            Hl7Error::UnsupportedVersion { .. } => Some(("MSH", 12)),
            Hl7Error::UnsupportedMessageType { .. } => Some(("MSH", 9)),
            Hl7Error::UnsupportedEvent { .. } => Some(("MSH", 9)),
            Hl7Error::BadEncodingCharacters => Some(("MSH", 2)),
            _ => None,
        }
    }
}

/// HL7 table 0357, message error condition codes (HL7 v2.5 §2.15.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorCode {
    MessageAccepted,
    SegmentSequenceError,
    RequiredFieldMissing,
    DataTypeError,
    TableValueNotFound,
    UnsupportedMessageType,
    UnsupportedEventCode,
    UnsupportedProcessingId,
    UnsupportedVersionId,
    UnknownKeyIdentifier,
    DuplicateKeyIdentifier,
    ApplicationRecordLocked,
    ApplicationInternalError,
}

impl ErrorCode {
    pub fn value(self) -> u16 {
        match self {
            ErrorCode::MessageAccepted => 0,
            ErrorCode::SegmentSequenceError => 100,
            ErrorCode::RequiredFieldMissing => 101,
            ErrorCode::DataTypeError => 102,
            ErrorCode::TableValueNotFound => 103,
            ErrorCode::UnsupportedMessageType => 200,
            ErrorCode::UnsupportedEventCode => 201,
            ErrorCode::UnsupportedProcessingId => 202,
            ErrorCode::UnsupportedVersionId => 203,
            ErrorCode::UnknownKeyIdentifier => 204,
            ErrorCode::DuplicateKeyIdentifier => 205,
            ErrorCode::ApplicationRecordLocked => 206,
            ErrorCode::ApplicationInternalError => 207,
        }
    }

    /// The table's display text.
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::MessageAccepted => "Message accepted",
            ErrorCode::SegmentSequenceError => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataTypeError => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEventCode => "Unsupported event code",
            ErrorCode::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCode::UnsupportedVersionId => "Unsupported version id",
            ErrorCode::UnknownKeyIdentifier => "Unknown key identifier",
            ErrorCode::DuplicateKeyIdentifier => "Duplicate key identifier",
            ErrorCode::ApplicationRecordLocked => "Application record locked",
            ErrorCode::ApplicationInternalError => "Application internal error",
        }
    }
}
