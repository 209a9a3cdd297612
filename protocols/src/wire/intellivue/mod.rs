//! Philips IntelliVue MIB/RS232 Data Export (IntelliVue MP/MX/X2 monitors, serial port only).
//!
//! The monitor speaks a small OSI stack over the MIB/RS232 port; medgw implements the client
//! side (association; polls of the numerics, the alert monitor, the patient demographics and,
//! when configured, the waves) and, behind `sim`, the monitor side:
//!
//! ```text
//!  frame       C0 | 11 01 len:u16 | user data | FCS:u16 LE | C1      (frame.rs; guide ch. 4)
//!  session     first user-data byte = SPDU type: 0D AARQ, 0E AARE, 0C refuse,
//!              09 release rq, 0A release rp, 19 abort, E1 data         (session.rs)
//!  remote op   SPpdu E1 00 ctx:u16 | ROapdus | ROIV/RORS/ROER/ROLRS    (pdu.rs)
//!  MDIB data   AttributeList / AVA / NuObsValue / NuObsValueCmp / time (attributes.rs)
//!  waves       SaObsValue / SaSpec / ScaleRangeSpec16 / fixed values     (wave.rs)
//!  alarms      DevAlarmList of the alert monitor                      (alarms.rs)
//!  patient     the demographics object's patient id                   (demographics.rs)
//!  codes       physio id -> MDC metric, NOM_DIM -> MDC unit             (nomenclature.rs)
//!  client      the Decoder state machine (alloc)                       (client.rs)
//! ```
//!
//! All multi-byte fields are big-endian (network order) except the frame check sequence, which
//! PPP sends low byte first.
//!
//! ## Sources
//! The Philips *Data Export Interface Programming Guide* (IntelliVue X2/MP/MX, 4535 642 59271)
//! was not available beyond its table of contents. Facts come from open implementations read
//! for facts only (no code copied):
//! - VSC: `xeonfusion/VSCaptureMP` (C#, serial and LAN client; `Class2.cs`, `Class3.cs`);
//! - ICE: `mdpnp/mdpnp`, the OpenICE IntelliVue driver (Java; `devices/philips/...intellivue`,
//!   `RS232Adapter.java`, `FCSOutputStream.java`, the association classes);
//! - KOS: `Koshsky/Intellivue-api` (Go);
//! - PIPG: a public scapy dissector that cites the guide's pages (`# PIPG-75` etc.);
//! - the project's reference `protocols.md` §3 and its vectors PP-1..PP-4.
//!
//! Each fact below names its sources; those with one source only are marked
//! **[single source]** and covered by a test.

pub mod alarms;
pub mod attributes;
#[cfg(feature = "alloc")]
pub mod client;
pub mod demographics;
pub mod frame;
pub mod nomenclature;
pub mod pdu;
pub mod session;
pub mod wave;

use crate::error::{Error, Result};

#[cfg(feature = "alloc")]
pub use client::IntelliVueClient;

/// The protocol registry row (`protocols/src/registry.rs`).
///
/// Serial defaults: 115200 baud, 8 data bits, no parity, 1 stop bit on the MIB/RS232 port (the
/// guide's "Fixed Baudrate Protocol"): VSC (`MPSerialPort`: 115200, 8, None, One) and ICE
/// (`RS232Adapter`: `setDefaultSerialSettings(115200, Eight, None, One)`) agree.
#[cfg(feature = "alloc")]
pub const PROTOCOLS: &[crate::decode::ProtocolInfo] = &[crate::decode::ProtocolInfo {
    name: "intellivue",
    description: "Philips IntelliVue MIB/RS232 Data Export: association, MDS create, polls of numerics, alert monitor, demographics, waves",
    serial: Some(crate::serial::SerialSettings::new(115_200, 8, crate::serial::Parity::None, 1)),
    gatt: false,
    make: client::make,
}];

/// The items of a counted list (`count` items in `body`), each read by `read`. Ends after the
/// first item that fails; bytes left over after `count` items are an error naming `field`, so
/// a list whose count and length disagree is never taken as whole.
pub(crate) fn counted_items<'a, T>(
    body: &'a [u8],
    count: u16,
    field: &'static str,
    read: fn(&mut Reader<'a>) -> crate::error::Result<T>,
) -> CountedItems<'a, T> {
    CountedItems { r: Reader::new(body), left: count, failed: false, field, read }
}

/// The iterator of [`counted_items`]: a named type (not `impl Iterator`) so that parsed views
/// can hand it out as their own iterator type without allocating.
#[derive(Debug, Clone)]
pub struct CountedItems<'a, T> {
    r: Reader<'a>,
    left: u16,
    failed: bool,
    field: &'static str,
    read: fn(&mut Reader<'a>) -> crate::error::Result<T>,
}

impl<'a, T> Iterator for CountedItems<'a, T> {
    type Item = crate::error::Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if self.r.remaining() != 0 {
                self.failed = true;
                return Some(Err(Error::BadField { field: self.field, value: self.r.remaining() as u32 }));
            }
            return None;
        }
        self.left -= 1;
        let item = (self.read)(&mut self.r);
        self.failed = item.is_err();
        Some(item)
    }
}

/// A big-endian reader over a byte slice that never panics: every read checks its length and
/// reports [`Error::Truncated`] with what it needed.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated { needed: usize::MAX, got: self.bytes.len() })?;
        let s = self.bytes.get(self.pos..end).ok_or(Error::Truncated { needed: end, got: self.bytes.len() })?;
        self.pos = end;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8> {
        let s = self.take(1)?;
        Ok(s.first().copied().unwrap_or(0))
    }

    pub fn u16(&mut self) -> Result<u16> {
        match *self.take(2)? {
            [a, b] => Ok(u16::from_be_bytes([a, b])),
            _ => Err(Error::Truncated { needed: 2, got: 0 }),
        }
    }

    pub fn u32(&mut self) -> Result<u32> {
        match *self.take(4)? {
            [a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
            _ => Err(Error::Truncated { needed: 4, got: 0 }),
        }
    }

    /// A `u16` length followed by that many bytes (the `length` fields of the data export PDUs).
    pub fn counted(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// A big-endian writer into a caller's buffer; [`Error::BufferTooSmall`] instead of a panic.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, pos: 0 }
    }

    pub fn len(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or(&[])
    }

    pub fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.pos + bytes.len();
        let dst = self.buf.get_mut(self.pos..end).ok_or(Error::BufferTooSmall { needed: end })?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    pub fn u8(&mut self, v: u8) -> Result<()> {
        self.put(&[v])
    }

    pub fn u16(&mut self, v: u16) -> Result<()> {
        self.put(&v.to_be_bytes())
    }

    pub fn u32(&mut self, v: u32) -> Result<()> {
        self.put(&v.to_be_bytes())
    }

    /// Reserves a `u16` length field to be filled by [`Writer::end_len`].
    pub fn begin_len(&mut self) -> Result<usize> {
        let at = self.pos;
        self.u16(0)?;
        Ok(at)
    }

    /// Writes, at `at`, the number of bytes written since the field, as a `u16`.
    pub fn end_len(&mut self, at: usize) -> Result<()> {
        let n = self.pos.checked_sub(at + 2).ok_or(Error::BufferTooSmall { needed: at + 2 })?;
        let n = u16::try_from(n).map_err(|_| Error::TooLong { max: u16::MAX as usize })?;
        let dst = self.buf.get_mut(at..at + 2).ok_or(Error::BufferTooSmall { needed: at + 2 })?;
        dst.copy_from_slice(&n.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_what_it_needed() {
        let mut r = Reader::new(&[0x12, 0x34, 0x56]);
        assert_eq!(r.u16().unwrap(), 0x1234);
        assert_eq!(r.u16(), Err(Error::Truncated { needed: 4, got: 3 }));
        assert_eq!(r.u8().unwrap(), 0x56);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn writer_patches_lengths_and_refuses_overflow() {
        let mut buf = [0u8; 6];
        let mut w = Writer::new(&mut buf);
        let at = w.begin_len().unwrap();
        w.put(&[1, 2, 3]).unwrap();
        w.end_len(at).unwrap();
        assert_eq!(w.written(), &[0, 3, 1, 2, 3]);
        assert_eq!(w.u16(7), Err(Error::BufferTooSmall { needed: 7 }));
    }
}
