//! Dräger MEDIBUS over RS-232: the request/response protocol of Dräger ventilators, anaesthesia
//! machines and monitors.
//!
//! Sources (protocols.md §4, "thin"): Dräger *RS 232 MEDIBUS Protocol Definition* rev. 6.00
//! (only its table of contents was read), the LGPL client VSCaptureDrgVent (`Class1.cs`
//! framing and checksum, `Class2.cs` command and code tables), cross-checked against two other
//! open MEDIBUS clients (the mdrepo `MedibusDriver` and a `MedibusProtocol` state machine) for
//! the session rules: every command is answered, ICC and NOP may come from either side, a
//! corrupt command is answered with NAK. Link: 19200 baud, 8 data bits, even parity, 1 stop bit
//! (VSCaptureDrgVent; devices allow other speeds \[UNCONFIRMED\]).
//!
//! ```text
//! command  (either side):  | ESC 0x1B | code | [arguments] | CS hi | CS lo | CR 0x0D |
//! response (to a command): | SOH 0x01 | code | [data]      | CS hi | CS lo | CR 0x0D |
//!     CS = sum(ESC/SOH .. last data byte) mod 256, two upper-case ASCII hex digits
//!     e.g. DP-1 request CP1 data: 1B 24 33 46 0D = ESC '$' "3F" CR
//!
//! measured data (0x24 response): | code: 2 hex chars | value: 4 chars | × n
//!     e.g. DP-2: 01 24 "DC  72" "E1  71" "EB  97" "AA" 0D
//!
//! codes: ICC 0x51 'Q', device id 0x52 'R', NOP 0x30 '0', stop 0x55 'U',
//!        data CP1 0x24 '$', CP2 0x2B, limits 0x25/0x26, alarms 0x27, time 0x28,
//!        settings 0x29, text 0x2A; NAK 0x15 (response to a corrupt/refused command)
//! ```
//!
//! current alarms (0x27 response): | priority: 1 byte | code: 2 hex chars | phrase: 12 chars | × n
//!
//! Layers: [`frame`] (one message: checked view, parse/emit, checksum), [`framer`] (the stream
//! accumulator), [`data`] (measured-data records, codes, device identification), [`alarms`] (current alarms) and, with
//! `alloc`, the session state machine in `decoder`.

pub mod alarms;
pub mod data;
pub mod frame;
pub mod framer;

#[cfg(feature = "alloc")]
pub mod decoder;

pub use frame::{cmd, Kind, Message};
pub use framer::{Framer, FramerEvent};

/// The MEDIBUS protocol (19200 8E1, per VSCaptureDrgVent).
#[cfg(feature = "alloc")]
pub const PROTOCOLS: &[crate::decode::ProtocolInfo] = &[crate::decode::ProtocolInfo {
    name: "medibus",
    description: "Dräger MEDIBUS (RS-232): polls current measured data and current alarms (codepage 1); passive with listen_only",
    serial: Some(crate::serial::SerialSettings::new(19200, 8, crate::serial::Parity::Even, 1)),
    gatt: false,
    make: decoder::make,
}];
