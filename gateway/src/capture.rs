//! Captures of a device's raw bytes with their arrival times (`medgw record`), read back by
//! `medgw decode` and `medgw simulate --replay`.
//!
//! ```text
//! # medgw-capture v1 port=/dev/ttyUSB0 baud=9600 protocol=nonin-df8
//! 2024-03-15T10:22:05.123Z rx 80486100
//! 2024-03-15T10:22:06.120Z rx 80486100
//! 2024-03-15T10:22:06.500Z tx 1b24334600
//! ```
//! One chunk per line: UTC time, direction (`rx` from the device, `tx` to it), hex bytes.
//! Plain text on purpose: an engineer can read, trim and e-mail it.

use std::io::{BufRead, Write};

use medgw_protocols::Timestamp;

pub const HEADER: &str = "# medgw-capture v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the device.
    Rx,
    /// To the device.
    Tx,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub time: Timestamp,
    pub direction: Direction,
    pub bytes: Vec<u8>,
}

/// Whether `text` starts like a capture file.
pub fn is_capture(text: &[u8]) -> bool {
    text.starts_with(HEADER.as_bytes())
}

/// Writes one chunk line.
pub fn write_chunk(out: &mut impl Write, c: &Chunk) -> std::io::Result<()> {
    let dir = match c.direction {
        Direction::Rx => "rx",
        Direction::Tx => "tx",
    };
    writeln!(out, "{} {dir} {}", c.time.rfc3339(), hex::encode(&c.bytes))
}

/// Reads a capture; errors name the line.
pub fn read(input: impl BufRead) -> Result<Vec<Chunk>, String> {
    let mut chunks = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(t), Some(d), h) = (parts.next(), parts.next(), parts.next().unwrap_or("")) else {
            return Err(format!("line {}: expected TIME DIRECTION HEX", i + 1));
        };
        let time = Timestamp::parse_rfc3339(t).map_err(|e| format!("line {}: time {t:?}: {e}", i + 1))?;
        let direction = match d {
            "rx" => Direction::Rx,
            "tx" => Direction::Tx,
            _ => return Err(format!("line {}: direction {d:?} is not rx or tx", i + 1)),
        };
        let bytes = hex::decode(h).map_err(|e| format!("line {}: hex: {e}", i + 1))?;
        chunks.push(Chunk { time, direction, bytes });
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let c = vec![
            Chunk { time: Timestamp(1_710_498_125_123), direction: Direction::Rx, bytes: vec![0x80, 0x48, 0x61, 0x00] },
            Chunk { time: Timestamp(1_710_498_126_000), direction: Direction::Tx, bytes: vec![0x1b, 0x24] },
        ];
        let mut out = Vec::new();
        writeln!(out, "{HEADER} port=/dev/x").unwrap();
        for ch in &c {
            write_chunk(&mut out, ch).unwrap();
        }
        assert!(is_capture(&out));
        assert_eq!(String::from_utf8_lossy(&out).lines().nth(1), Some("2024-03-15T10:22:05.123Z rx 80486100"));
        assert_eq!(read(out.as_slice()).unwrap(), c);
        assert!(read("2024-03-15T10:22:05Z up 00".as_bytes()).unwrap_err().contains("line 1"));
        assert!(read("2024-03-15T10:22:05Z rx 0g".as_bytes()).unwrap_err().contains("hex"));
        assert!(read("yesterday rx 00".as_bytes()).unwrap_err().contains("time"));
    }
}
