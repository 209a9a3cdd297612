//! Device Information Service strings and the System ID (0x2A23), which give a device's
//! identity (decisions.md, "Identity": what the device says about itself).
//!
//! The strings (Manufacturer Name 0x2A29, Model Number 0x2A24, Serial Number 0x2A25,
//! Firmware / Hardware / Software Revision 0x2A26 / 0x2A27 / 0x2A28) are UTF-8 (`utf8s`)
//! without a terminator; some devices pad them with NULs or spaces, which are trimmed.
//!
//! ```text
//! org.bluetooth.characteristic.system_id, little-endian (LSO first):
//! +-----------------------------------------+----------------------+
//! | manufacturer-defined identifier (40 bit) | OUI (24 bit)         |
//! +-----------------------------------------+----------------------+
//!   bytes 0..4                                 bytes 5..7
//! ```
//! The 64-bit value is an EUI-64 with the OUI in its top 24 bits; the XML's example: OUI
//! 0x123456 and company-assigned 0x9ABCDE (from a Bluetooth address) give System ID
//! 0x123456FFFE9ABCDE. The EUI-64 is written most significant octet first (12-34-56-FF-FE-...),
//! so it is the wire bytes reversed.

use crate::error::{Error, Result};

use super::check_len;

/// A Device Information string value, trimmed of trailing NULs and spaces.
pub fn parse_string(value: &[u8]) -> Result<&str> {
    check_len(value, 0)?;
    let s = core::str::from_utf8(value).map_err(|_| Error::BadText { field: "device information string" })?;
    Ok(s.trim_end_matches(['\0', ' ']))
}

/// A System ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemId {
    /// 40-bit manufacturer-defined identifier.
    pub manufacturer_id: u64,
    /// 24-bit IEEE OUI.
    pub oui: u32,
}

impl SystemId {
    pub const LEN: usize = 8;

    pub fn parse(b: &[u8]) -> Result<SystemId> {
        check_len(b, Self::LEN)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(b.get(..8).ok_or(Error::Truncated { needed: 8, got: b.len() })?);
        let v = u64::from_le_bytes(raw);
        Ok(SystemId { manufacturer_id: v & 0xFF_FFFF_FFFF, oui: (v >> 40) as u32 })
    }

    /// The EUI-64, most significant octet first.
    pub fn eui64(&self) -> [u8; 8] {
        (((self.oui as u64) << 40) | (self.manufacturer_id & 0xFF_FFFF_FFFF)).to_be_bytes()
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = super::Writer::new(out);
        w.bytes(&(((self.oui as u64) << 40) | (self.manufacturer_id & 0xFF_FFFF_FFFF)).to_le_bytes())?;
        Ok(w.len())
    }
}

/// The identity a Device Information characteristic value tells, by its UUID: manufacturer,
/// model, serial, firmware revision and System ID (as EUI-64). Hardware and software revisions
/// have no field in [`crate::observation::DeviceIdentity`] and give an empty identity; so does
/// an unknown UUID.
#[cfg(feature = "alloc")]
pub fn identity(uuid: u16, value: &[u8]) -> Result<crate::observation::DeviceIdentity> {
    use super::uuid::*;
    use crate::observation::{DeviceIdentity, Eui64};
    use alloc::string::ToString;
    let mut id = DeviceIdentity::default();
    let text = || parse_string(value).map(|s| Some(s.to_string()));
    match uuid {
        MANUFACTURER_NAME => id.manufacturer = text()?,
        MODEL_NUMBER => id.model = text()?,
        SERIAL_NUMBER => id.serial = text()?,
        FIRMWARE_REVISION => id.firmware = text()?,
        SYSTEM_ID => id.eui64 = Some(Eui64(SystemId::parse(value)?.eui64())),
        _ => {}
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_id_example_from_the_xml() {
        // System ID 0x123456FFFE9ABCDE, little-endian on the wire.
        let wire = [0xDE, 0xBC, 0x9A, 0xFE, 0xFF, 0x56, 0x34, 0x12];
        let id = SystemId::parse(&wire).unwrap();
        assert_eq!(id.oui, 0x12_3456);
        assert_eq!(id.manufacturer_id, 0xFF_FE9A_BCDE);
        assert_eq!(id.eui64(), [0x12, 0x34, 0x56, 0xFF, 0xFE, 0x9A, 0xBC, 0xDE]);
        let mut out = [0u8; 8];
        id.emit(&mut out).unwrap();
        assert_eq!(out, wire);
        assert_eq!(SystemId::parse(&wire[..7]), Err(Error::Truncated { needed: 8, got: 7 }));
    }

    #[test]
    fn strings_are_utf8_and_trimmed() {
        assert_eq!(parse_string(b"Nonin\0\0"), Ok("Nonin"));
        assert_eq!(parse_string(b"3230 "), Ok("3230"));
        assert_eq!(parse_string(&[0xFF, 0xFE]), Err(Error::BadText { field: "device information string" }));
        let id = identity(super::super::uuid::SYSTEM_ID, &[0xDE, 0xBC, 0x9A, 0xFE, 0xFF, 0x56, 0x34, 0x12]).unwrap();
        assert_eq!(alloc::format!("{}", id.eui64.unwrap()), "123456FFFE9ABCDE");
        assert_eq!(identity(super::super::uuid::SERIAL_NUMBER, b"SN-42").unwrap().serial.as_deref(), Some("SN-42"));
    }
}
