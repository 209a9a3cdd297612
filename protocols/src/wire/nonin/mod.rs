//! Nonin pulse oximeters: serial data formats 2, 7 and 8 (OEM III, Xpod, 9560 Onyx II,
//! WristOx 3150).
//!
//! Source: Nonin, *Onyx II Model 9560 Bluetooth Fingertip Oximeter: OEM Specification and
//! Technical Information* (doc 6470-000-01, ©2008): link and format selection pp. 3–4, DF2
//! pp. 8–11, DF7 pp. 12–15, DF8 p. 16. Link: 9600 baud, 8 data bits, no parity, 1 stop bit, no
//! flow control (p. 3; the same framing on the OEM III / Xpod UART is \[UNCONFIRMED\]).
//!
//! ```text
//! DF2  (75 frames/s, 25 frames = 1 packet every 1/3 s), spec pp. 8–11:
//!   +------+--------+-------+-------+-----+
//!   | 0x01 | STATUS | PLETH | FLOAT | CHK |   CHK = (b1 + b2 + b3 + b4) mod 256
//!   +------+--------+-------+-------+-----+
//!   STATUS: | 1 | R | ARTF | OOT | SNSA | RPRF | GPRF | SYNC |   (SYNC = 1 on frame 1 only)
//!
//! DF7  (as DF2, 16-bit pleth, no START byte), spec pp. 12–15:
//!   +--------+-----------+-----------+-------+-----+
//!   | STATUS | PLETH MSB | PLETH LSB | FLOAT | CHK |   CHK = (b1 + b2 + b3 + b4) mod 256
//!   +--------+-----------+-----------+-------+-----+
//!
//! DF8  (1 frame/s, no checksum), spec p. 16:
//!   +--------+------+--------+---------+
//!   | STATUS | HR-D | SpO2-D | STATUS2 |   only STATUS has bit 7 set
//!   +--------+------+--------+---------+
//!   STATUS:  | 1 | R | OOT | LPRF | MPRF | ARTF | HR8 | HR7 |
//!   STATUS2: | 0 | R | SPA | R | SNSA | R | R | LOW BAT |
//! ```
//! The meaning of the DF2/DF7 FLOAT byte by frame number is drawn in [`packet`].
//!
//! Layers: [`frame`] (checked views and validated frames, `parse`/`emit`), [`sync`] (stream
//! synchronisation and resynchronisation), [`packet`] (25-frame packets), and, with `alloc`,
//! the decoders that turn them into measurements.

pub mod frame;
pub mod packet;
pub mod sync;

#[cfg(feature = "alloc")]
pub mod decoder;

pub use frame::{Df8Frame, Format, Frame, Perfusion, Status};
pub use packet::{Packet, PacketAssembler, PacketEvent, PACKET_FRAMES};
pub use sync::{Df8Sync, FrameSync, SyncEvent};

/// The three Nonin protocol names (brief: serial default 9600 8N1, spec p. 3).
#[cfg(feature = "alloc")]
pub const PROTOCOLS: &[crate::decode::ProtocolInfo] = &[
    crate::decode::ProtocolInfo {
        name: "nonin-df2",
        description: "Nonin data format 2: 5-byte frames, 25-frame packets, 8-bit pleth (SpO2, pulse rate 3/s)",
        serial: Some(crate::serial::SerialSettings::new(9600, 8, crate::serial::Parity::None, 1)),
        gatt: false,
        make: decoder::make_df2,
    },
    crate::decode::ProtocolInfo {
        name: "nonin-df7",
        description: "Nonin data format 7: as DF2 with a 16-bit pleth and no start byte (SpO2, pulse rate 3/s)",
        serial: Some(crate::serial::SerialSettings::new(9600, 8, crate::serial::Parity::None, 1)),
        gatt: false,
        make: decoder::make_df7,
    },
    crate::decode::ProtocolInfo {
        name: "nonin-df8",
        description: "Nonin data format 8: 4-byte frames once a second, display values (SpO2, pulse rate)",
        serial: Some(crate::serial::SerialSettings::new(9600, 8, crate::serial::Parity::None, 1)),
        gatt: false,
        make: decoder::make_df8,
    },
];
