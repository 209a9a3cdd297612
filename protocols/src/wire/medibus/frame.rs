//! One MEDIBUS message: a command (`ESC`) or a response (`SOH`), checked view and validated
//! value with `parse`/`emit`.
//!
//! ```text
//! command:   | ESC 0x1B | code | arguments ...  | CS hi | CS lo | CR 0x0D |
//! response:  | SOH 0x01 | echo | data ...       | CS hi | CS lo | CR 0x0D |
//! CS = (sum of every byte from ESC/SOH through the last argument/data byte) mod 256,
//!      written as two upper-case ASCII hex digits.
//! ```
//! Source: Dräger *RS 232 MEDIBUS Protocol Definition* rev. 6.00, "Structure of Commands" and
//! "Structure of Responses" (as implemented by VSCaptureDrgVent `Class1.cs`); vectors DP-1..DP-3.

use crate::error::Error;

/// Start of a command.
pub const ESC: u8 = 0x1B;
/// Start of a response.
pub const SOH: u8 = 0x01;
/// End of every message.
pub const CR: u8 = 0x0D;
/// The response to a corrupt or refused command: `SOH NAK cs CR`.
pub const NAK: u8 = 0x15;
/// Software handshake: suspend (DC3) and resume (DC1) transmission, abort (CAN).
pub const DC1: u8 = 0x11;
pub const DC3: u8 = 0x13;
pub const CAN: u8 = 0x18;

/// Command codes (MEDIBUS "Command Codes"; VSCaptureDrgVent `Class2.cs`).
pub mod cmd {
    /// No operation: keeps the link alive.
    pub const NOP: u8 = 0x30;
    /// Initialize communication.
    pub const ICC: u8 = 0x51;
    /// Request device identification.
    pub const DEVICE_ID: u8 = 0x52;
    /// Stop communication.
    pub const STOP: u8 = 0x55;
    /// Request current measured data, codepage 1.
    pub const CUR_DATA_CP1: u8 = 0x24;
    pub const LOW_LIMITS_CP1: u8 = 0x25;
    pub const HIGH_LIMITS_CP1: u8 = 0x26;
    pub const ALARMS_CP1: u8 = 0x27;
    pub const DATE_TIME: u8 = 0x28;
    pub const SETTINGS: u8 = 0x29;
    pub const TEXT_MESSAGES: u8 = 0x2A;
    pub const CUR_DATA_CP2: u8 = 0x2B;

    /// A name for logs and timeouts.
    pub const fn name(code: u8) -> &'static str {
        match code {
            NOP => "NOP",
            ICC => "ICC",
            DEVICE_ID => "device identification",
            STOP => "stop",
            CUR_DATA_CP1 => "current measured data (codepage 1)",
            ALARMS_CP1 => "current alarms (codepage 1)",
            CUR_DATA_CP2 => "current measured data (codepage 2)",
            _ => "command",
        }
    }
}

/// Command or response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Command,
    Response,
}

impl Kind {
    pub const fn start(self) -> u8 {
        match self {
            Kind::Command => ESC,
            Kind::Response => SOH,
        }
    }
}

/// The MEDIBUS checksum of `bytes`: their sum modulo 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

/// A byte as two upper-case hex digits.
pub const fn hex2(b: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    [DIGITS[(b >> 4) as usize], DIGITS[(b & 0x0F) as usize]]
}

fn unhex(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// A checked view of one message without its CR: start, code, data, two checksum digits.
#[derive(Clone, Copy, Debug)]
pub struct MessageView<T: AsRef<[u8]>> {
    buffer: T,
}

/// Start, code and the two checksum digits.
pub const MIN_LEN: usize = 4;

impl<T: AsRef<[u8]>> MessageView<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < MIN_LEN {
            return Err(Error::Truncated { needed: MIN_LEN, got: b.len() });
        }
        match b.first() {
            Some(&ESC) | Some(&SOH) => Ok(MessageView { buffer }),
            Some(&other) => Err(Error::BadField { field: "medibus start", value: other as u32 }),
            None => Err(Error::Truncated { needed: MIN_LEN, got: 0 }),
        }
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn kind(&self) -> Kind {
        if self.bytes().first() == Some(&ESC) {
            Kind::Command
        } else {
            Kind::Response
        }
    }

    pub fn code(&self) -> u8 {
        self.bytes().get(1).copied().unwrap_or(0)
    }

    pub fn data(&self) -> &[u8] {
        let b = self.bytes();
        b.get(2..b.len().saturating_sub(2)).unwrap_or(&[])
    }

    /// The checksum the message carries, if its two digits are upper-case hex.
    pub fn checksum_field(&self) -> Option<u8> {
        let b = self.bytes();
        let d = b.get(b.len().saturating_sub(2)..)?;
        Some(unhex(*d.first()?)? << 4 | unhex(*d.get(1)?)?)
    }

    /// The checksum of start, code and data.
    pub fn computed_checksum(&self) -> u8 {
        let b = self.bytes();
        checksum(b.get(..b.len().saturating_sub(2)).unwrap_or(&[]))
    }
}

/// A validated message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: Kind,
    pub code: u8,
    pub data: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses a message without its CR and checks its checksum.
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, Error> {
        let view = MessageView::new_checked(bytes)?;
        let expected = view.computed_checksum();
        let found = view.checksum_field().ok_or(Error::BadText { field: "medibus checksum" })?;
        if expected != found {
            return Err(Error::BadChecksum { expected: expected as u32, found: found as u32 });
        }
        let data = bytes.get(2..bytes.len().saturating_sub(2)).unwrap_or(&[]);
        Ok(Message { kind: view.kind(), code: view.code(), data })
    }

    pub const fn command(code: u8, data: &'a [u8]) -> Message<'a> {
        Message { kind: Kind::Command, code, data }
    }

    pub const fn response(code: u8, data: &'a [u8]) -> Message<'a> {
        Message { kind: Kind::Response, code, data }
    }

    /// Bytes [`Message::emit`] writes, CR included.
    pub const fn wire_len(&self) -> usize {
        self.data.len() + 5
    }

    /// Writes the message with its checksum and CR.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        let n = self.wire_len();
        let out = out.get_mut(..n).ok_or(Error::BufferTooSmall { needed: n })?;
        let (head, tail) = out.split_at_mut(2);
        head.copy_from_slice(&[self.kind.start(), self.code]);
        let (data, end) = tail.split_at_mut(self.data.len());
        data.copy_from_slice(self.data);
        let cs = checksum(&[self.kind.start(), self.code]).wrapping_add(checksum(self.data));
        let h = hex2(cs);
        end.copy_from_slice(&[h[0], h[1], CR]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DP-1: request measured data CP1.
    const DP1: &[u8] = &[0x1B, 0x24, 0x33, 0x46, 0x0D];
    /// DP-2: its response, HR 72, pulse 71, SpO2 97.
    const DP2: &[u8] = b"\x01$DC  72E1  71EB  97AA\r";
    /// DP-3: ICC, device-ID and NOP requests.
    const DP3: [&[u8]; 3] = [&[0x1B, 0x51, 0x36, 0x43, 0x0D], &[0x1B, 0x52, 0x36, 0x44, 0x0D], &[0x1B, 0x30, 0x34, 0x42, 0x0D]];

    fn strip(b: &[u8]) -> &[u8] {
        &b[..b.len() - 1]
    }

    #[test]
    fn dp_vectors_parse_and_emit_byte_for_byte() {
        let m = Message::parse(strip(DP1)).unwrap();
        assert_eq!(m, Message::command(cmd::CUR_DATA_CP1, b""));
        let r = Message::parse(strip(DP2)).unwrap();
        assert_eq!(r, Message::response(cmd::CUR_DATA_CP1, b"DC  72E1  71EB  97"));
        for (v, code) in DP3.iter().zip([cmd::ICC, cmd::DEVICE_ID, cmd::NOP]) {
            assert_eq!(Message::parse(strip(v)).unwrap(), Message::command(code, b""));
        }
        for (m, v) in [(m, DP1), (r, DP2), (Message::command(cmd::NOP, b""), DP3[2])] {
            let mut out = [0u8; 64];
            let n = m.emit(&mut out).unwrap();
            assert_eq!(&out[..n], v);
        }
    }

    #[test]
    fn checksum_errors_are_named() {
        assert_eq!(Message::parse(b"\x1b$3E"), Err(Error::BadChecksum { expected: 0x3F, found: 0x3E }));
        assert_eq!(Message::parse(b"\x1b$3f"), Err(Error::BadText { field: "medibus checksum" }));
        assert!(matches!(Message::parse(b"\x1b$3"), Err(Error::Truncated { .. })));
        assert!(matches!(Message::parse(b"X$3F3F"), Err(Error::BadField { field: "medibus start", .. })));
        let mut small = [0u8; 4];
        assert_eq!(Message::command(cmd::NOP, b"").emit(&mut small), Err(Error::BufferTooSmall { needed: 5 }));
    }
}
