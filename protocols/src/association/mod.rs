//! Which patient each bed belongs to, and when: the association state machine of issue 14.
//!
//! It lives here, sans-IO, rather than in the gateway because the daemon's MLLP listener,
//! `medgw adt replay` and the property tests must all run the same rules on the same state:
//! messages and times go in ([`Associations::apply`], with the effective time resolved by the
//! caller), audit events come out, and nothing reads a clock or a socket (style.md, habit 3).
//! The state is `serde` so the gateway can persist it beside its buffer.
//!
//! Per bed it keeps a timeline of states with the time each began, so
//! [`Associations::patient_at`] answers for a reading's *effective* time: a reading taken before
//! a transfer goes to the old patient even when it is published after. The safety rules are in
//! `docs/adt.md`; in short:
//! - a patient is never associated with two beds: an admit or transfer vacates the old bed;
//! - a cancel (A11, A12, A13) retracts the event it cancels, so the timeline answers as if that
//!   event never happened; a cancel that would also undo later changes is refused, not guessed;
//! - a swap (A17) changes both beds in one step, or neither;
//! - a manual binding and an ADT association on one bed is a conflict: no patient is used;
//! - a device that reports another patient id than the ADT patient raises a mismatch, and its
//!   readings carry no patient until the ids agree again.

mod bedmap;
mod engine;

pub use bedmap::{BedMap, BedMapError, BedMapping};
pub use engine::{ApplyError, Associations, Attribution, AuditEvent, BedState, Cause, Patient, Source};
