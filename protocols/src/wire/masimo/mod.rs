//! Masimo Radical-5 / Radical-7 / Rad-8 / Rad-87 serial output, "ASCII 1" mode.
//!
//! Sources (protocols.md §2): MD PnP `poxrad_discrete.h` (field list, EXC and ALARM bits),
//! remkolems `masimo-datacapture` (Rad-8 / Rad-7 sample lines), Rad-87 Operator's Manual p. 7-4
//! (serial set-up: 9600 baud, 8 data bits, no parity, 1 stop bit, no handshaking; DB-9 TX pin
//! 3, RX pin 2, ground pin 5), Rad-8 Operator's Manual p. 4-24 (EXC bits, trend format).
//!
//! One line per second (Radical-5/7; the Rad-87 every 2 s), ended by CR LF:
//!
//! ```text
//! MM/DD/YY HH:MM:SS TAG=value TAG=value ... CR LF
//! |-- device local time, no zone, year 20YY
//!
//! Radical-5:          SPO2=097% BPM=064 PI=11.82% ALARM=xxxx EXC=xxx
//! Radical-7 / Rad-8:  SN=nnnnnnnnnn SPO2=nnn% BPM=nnn PI=nn.nn% SPCO=nn.n% SPMET=nn.n%
//!                     DESAT=nn PIDELTA=+nn PVI=nnn ALARM=hhhh EXC=hhhhhh
//! newer Radical-7:    adds SPHB=, SPOC=, RESVD=, EXC1=hhhhhhhh; ALARM 6 hex digits
//!
//! value:  digits, optional '.', optional sign (PIDELTA), '%' after SPO2/PI/SPCO/SPMET;
//!         '-' in the digit positions = no value (SPO2=---%, PI=--.--%, PIDELTA=+--)
//! ALARM:  4 or 6 hex digits        EXC: 3, 6 or 7 hex digits
//! ```
//!
//! Fields are parsed by tag, never by column; unknown tags (`RESVD`, `EXC1`, ...) are ignored.
//! The format has no checksum.

pub mod line;
pub mod status;

#[cfg(feature = "alloc")]
pub mod decoder;

pub use line::{Line, Reading, Tag};

/// The Masimo protocol (Rad-87 manual p. 7-4: 9600 8N1).
#[cfg(feature = "alloc")]
pub const PROTOCOLS: &[crate::decode::ProtocolInfo] = &[crate::decode::ProtocolInfo {
    name: "masimo",
    description: "Masimo SET serial ASCII 1 lines (Radical-5/7, Rad-8, Rad-87): SpO2, pulse rate, PI, SpCO, SpMet, PVI, ...",
    serial: Some(crate::serial::SerialSettings::new(9600, 8, crate::serial::Parity::None, 1)),
    gatt: false,
    make: decoder::make,
}];
