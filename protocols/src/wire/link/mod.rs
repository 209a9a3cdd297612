//! The medgw link: frames between a medgw sensor node and the gateway over a UART.
//!
//! # Frame
//!
//! ```text
//!  frame   = COBS( payload | crc32 ) 0x00
//!  payload = postcard(Message)                  postcard wire format v1, at most 255 bytes
//!  crc32   = CRC-32/ISO-HDLC(payload), 4 bytes little-endian
//!            (poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF; check("123456789") = 0xCBF43926,
//!             the CRC of ISO/IEC 13239 HDLC, Ethernet and zlib)
//!
//!  +----------- COBS-encoded, no 0x00 inside -----------+
//!  | code | postcard(Message) ...      | crc32 (LE, 4)  | 00
//!  +----------------------------------------------------+
//!  at most 262 bytes on the wire: 255 + 4 bytes, one COBS code byte per 254, the delimiter
//! ```
//!
//! COBS (Cheshire & Baker 1999, [`cobs`]) keeps `0x00` for the delimiter, so a receiver that
//! starts mid-stream or meets line noise loses at most the frame in progress. A node also sends a
//! lone `0x00` at boot so that its first frame is not glued to noise. Empty frames (two `0x00` in
//! a row) are skipped. Frames whose encoding exceeds [`MAX_ENCODED`] are rejected without being
//! buffered; the CRC catches the corruption COBS cannot see.
//!
//! # Protocol
//!
//! The node is store-and-forward: it numbers its batches (`seq`, from 0 per boot, with a random
//! `boot_id` per boot), keeps every batch until the gateway acknowledges it, and sends batches in
//! `seq` order. When no acknowledgement makes progress for its resend timeout, or after it sends
//! a `Hello`, it goes back to its oldest unacknowledged batch and sends from there (go-back-N).
//!
//! The gateway's [`Ack`](Message::Ack) is cumulative, like TCP's: it names the highest `seq` up to
//! which the gateway holds *every* batch. It never acknowledges past a hole, since the node would
//! drop a batch the gateway does not have. Sequence tracking therefore follows three rules:
//! - the first batch after a `Hello` is the node's oldest unacknowledged one, so it sets the
//!   baseline (a gateway that restarted does not know what came before);
//! - a `seq` at or below what is acknowledged is a resend: decoded again (observation ids are
//!   deterministic, so receivers de-duplicate) and acknowledged again, never counted as a gap;
//! - a `seq` above the next expected one is either a lost frame (the node will resend it) or a
//!   hole the node can no longer fill (its ring buffer overflowed while the link was down). The
//!   gateway knows it is the latter when the batch starts a resend run (right after a `Hello`, or
//!   a `seq` not above the previous one): only then is it a sequence gap.
//!
//! Batches of a boot the gateway has no `Hello` for are decoded but not acknowledged; the gateway
//! asks for a `Hello` instead, after which the node resends them.

pub mod cobs;
mod message;

#[cfg(feature = "alloc")]
mod decoder;

#[cfg(feature = "alloc")]
pub use decoder::{LinkDecoder, PROTOCOLS};
pub use message::{absent_from_index, absent_index, LinkObservation, LinkValue, Message, LINK_VERSION, MAX_ITEMS, TEXT_LEN};

use crate::error::Error;

/// The protocol name in configuration and the registry.
pub const PROTOCOL: &str = "medgw-link";

/// Largest postcard payload of one frame.
pub const MAX_PAYLOAD: usize = 255;
/// CRC bytes after the payload.
pub const CRC_LEN: usize = 4;
/// Largest un-stuffed frame: payload and CRC.
pub const MAX_RAW: usize = MAX_PAYLOAD + CRC_LEN;
/// Largest COBS-encoded frame, without its delimiter (261 bytes).
pub const MAX_ENCODED: usize = cobs::max_encoded_len(MAX_RAW);
/// Largest frame on the wire, delimiter included (262 bytes): the size of a transmit buffer.
pub const MAX_FRAME: usize = MAX_ENCODED + 1;

/// CRC-32/ISO-HDLC (the `crc` crate's catalogue entry of that name). The gateway build (`alloc`)
/// uses slice-by-16 tables (16 KiB) for throughput; the firmware build keeps the 1 KiB byte-wise
/// table, since its flash budget is 64 KiB and its link runs at 115200 baud.
#[cfg(feature = "alloc")]
const CRC32: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);
#[cfg(not(feature = "alloc"))]
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32/ISO-HDLC of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// Encodes `msg` as one frame, delimiter included, into `out`; returns the frame length.
///
/// Fails with [`Error::TooLong`] when the postcard payload would exceed [`MAX_PAYLOAD`] (a batch
/// of 8 observations with large values can: send fewer items), and with
/// [`Error::BufferTooSmall`] when `out` cannot hold the frame ([`MAX_FRAME`] always can).
pub fn encode(msg: &Message, out: &mut [u8]) -> Result<usize, Error> {
    let mut raw = [0u8; MAX_RAW];
    let n = postcard::to_slice(msg, &mut raw[..MAX_PAYLOAD])
        .map_err(|e| match e {
            postcard::Error::SerializeBufferFull => Error::TooLong { max: MAX_PAYLOAD },
            _ => Error::Payload("postcard serialisation failed"),
        })?
        .len();
    let crc = crc32(&raw[..n]);
    raw[n..n + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    let len = cobs::encode(&raw[..n + CRC_LEN], out)?;
    let delimiter = out.get_mut(len).ok_or(Error::BufferTooSmall { needed: len + 1 })?;
    *delimiter = 0;
    Ok(len + 1)
}

/// Checks an un-stuffed frame (payload and CRC) and returns the payload: the checked view.
pub fn check_raw(raw: &[u8]) -> Result<&[u8], Error> {
    if raw.len() < CRC_LEN + 1 {
        return Err(Error::Truncated { needed: CRC_LEN + 1, got: raw.len() });
    }
    if raw.len() > MAX_RAW {
        return Err(Error::TooLong { max: MAX_PAYLOAD });
    }
    let (payload, tail) = raw.split_at(raw.len() - CRC_LEN);
    let mut le = [0u8; CRC_LEN];
    le.copy_from_slice(tail);
    let found = u32::from_le_bytes(le);
    let expected = crc32(payload);
    if found != expected {
        return Err(Error::BadChecksum { expected, found });
    }
    Ok(payload)
}

/// Parses a CRC-checked payload into a [`Message`]: the validated value. Trailing bytes after the
/// message are an error, so that every payload has exactly one meaning.
pub fn parse_payload(payload: &[u8]) -> Result<Message, Error> {
    let (msg, rest) = postcard::take_from_bytes::<Message>(payload).map_err(|e| {
        Error::Payload(match e {
            postcard::Error::DeserializeUnexpectedEnd => "payload ends inside the message",
            postcard::Error::DeserializeBadVarint => "bad varint",
            postcard::Error::DeserializeBadUtf8 => "bad UTF-8 in a string",
            postcard::Error::DeserializeBadEnum => "unknown message or value variant",
            _ => "postcard deserialisation failed (e.g. a string or list over capacity)",
        })
    })?;
    if !rest.is_empty() {
        return Err(Error::Payload("trailing bytes after the message"));
    }
    Ok(msg)
}

/// Decodes one COBS-encoded frame (without its delimiter) into a [`Message`].
pub fn decode(encoded: &[u8]) -> Result<Message, Error> {
    if encoded.len() > MAX_ENCODED {
        return Err(Error::TooLong { max: MAX_PAYLOAD });
    }
    let mut raw = [0u8; MAX_ENCODED];
    let n = cobs::decode(encoded, &mut raw)?;
    let payload = check_raw(raw.get(..n).unwrap_or_default())?;
    parse_payload(payload)
}

/// What [`FrameAccumulator::feed`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Feed<'buf, 'input> {
    /// The input was consumed without completing a frame.
    Consumed,
    /// A frame ended. `result` is its CRC-checked payload or why it was rejected; `offset` is the
    /// stream offset of its first byte; `rest` is the input after its delimiter, to feed next.
    Frame { offset: u64, result: Result<&'buf [u8], Error>, rest: &'input [u8] },
}

/// Finds frames in a byte stream with a fixed [`MAX_ENCODED`]-byte buffer.
///
/// Bytes are stored up to the next `0x00`; a frame longer than the buffer is reported once as
/// [`Error::TooLong`] when its delimiter arrives, and its excess bytes are never stored. Every
/// `0x00` resynchronises, so one bad frame never costs the next.
#[derive(Debug, Clone)]
pub struct FrameAccumulator {
    buf: [u8; MAX_ENCODED],
    len: usize,
    overflowed: bool,
    /// Stream offset of the first byte of the frame in progress.
    start: u64,
    /// Bytes fed so far.
    offset: u64,
}

impl Default for FrameAccumulator {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameAccumulator {
    pub const fn new() -> Self {
        FrameAccumulator { buf: [0; MAX_ENCODED], len: 0, overflowed: false, start: 0, offset: 0 }
    }

    /// Bytes fed so far: the stream offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Drops the frame in progress (after a reconnect: its rest will not come).
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }

    /// Feeds bytes until the end of the next frame. Call again with `rest` until
    /// [`Feed::Consumed`].
    pub fn feed<'i>(&mut self, mut input: &'i [u8]) -> Feed<'_, 'i> {
        loop {
            let (body, delimited, rest) = match input.iter().position(|&b| b == 0) {
                Some(i) => (input.get(..i).unwrap_or_default(), true, input.get(i + 1..).unwrap_or_default()),
                None => (input, false, &[][..]),
            };
            if !body.is_empty() && self.len == 0 && !self.overflowed {
                self.start = self.offset;
            }
            self.store(body);
            self.offset += body.len() as u64 + u64::from(delimited);
            if !delimited {
                return Feed::Consumed;
            }
            if self.len == 0 && !self.overflowed {
                // An empty frame: a lone delimiter, as a node sends at boot. Skip it.
                input = rest;
                continue;
            }
            let offset = self.start;
            let overflowed = core::mem::replace(&mut self.overflowed, false);
            let len = core::mem::replace(&mut self.len, 0);
            let result = if overflowed {
                Err(Error::TooLong { max: MAX_PAYLOAD })
            } else {
                match self.buf.get_mut(..len) {
                    Some(frame) => match cobs::decode_in_place(frame) {
                        Ok(n) => check_raw(frame.get(..n).unwrap_or_default()),
                        Err(e) => Err(e),
                    },
                    None => Err(Error::TooLong { max: MAX_PAYLOAD }),
                }
            };
            return Feed::Frame { offset, result, rest };
        }
    }

    fn store(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => {
                self.overflowed = true;
                self.len = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32/ISO-HDLC check value from the CRC RevEng catalogue ("check=0xcbf43926").
    #[test]
    fn crc_is_iso_hdlc() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn encode_decode_round_trip_and_limits() {
        let msg = Message::Ack { boot_id: 7, seq: 300 };
        let mut buf = [0u8; MAX_FRAME];
        let n = encode(&msg, &mut buf).unwrap();
        assert_eq!(buf[n - 1], 0);
        assert!(!buf[..n - 1].contains(&0));
        assert_eq!(decode(&buf[..n - 1]), Ok(msg.clone()));
        let mut small = [0u8; 4];
        assert!(matches!(encode(&msg, &mut small), Err(Error::BufferTooSmall { .. })));
    }

    #[test]
    fn accumulator_skips_empty_frames_and_reports_offsets() {
        let mut buf = [0u8; MAX_FRAME];
        let n = encode(&Message::HelloRequest, &mut buf).unwrap();
        let mut stream = alloc::vec![0u8, 0];
        stream.extend_from_slice(&buf[..n]);
        let mut acc = FrameAccumulator::new();
        match acc.feed(&stream) {
            Feed::Frame { offset, result, rest } => {
                assert_eq!(offset, 2);
                assert_eq!(parse_payload(result.unwrap()), Ok(Message::HelloRequest));
                assert!(rest.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(acc.offset(), stream.len() as u64);
    }

    #[test]
    fn long_runs_of_delimiters_are_skipped() {
        let mut acc = FrameAccumulator::new();
        let zeros = alloc::vec![0u8; 1 << 20];
        assert_eq!(acc.feed(&zeros), Feed::Consumed);
        assert_eq!(acc.offset(), 1 << 20);
    }

    #[test]
    fn accumulator_rejects_overlong_without_buffering_and_recovers() {
        let mut acc = FrameAccumulator::new();
        let long = [0x55u8; MAX_ENCODED + 1];
        assert_eq!(acc.feed(&long), Feed::Consumed);
        let mut buf = [0u8; MAX_FRAME];
        let n = encode(&Message::HelloRequest, &mut buf).unwrap();
        let mut tail = alloc::vec![0u8];
        tail.extend_from_slice(&buf[..n]);
        match acc.feed(&tail) {
            Feed::Frame { offset: 0, result: Err(Error::TooLong { max: 255 }), rest } => match acc.feed(rest) {
                Feed::Frame { offset, result: Ok(p), .. } => {
                    assert_eq!(offset, MAX_ENCODED as u64 + 2);
                    assert_eq!(parse_payload(p), Ok(Message::HelloRequest));
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
}
