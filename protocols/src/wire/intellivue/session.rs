//! The session and presentation layer: association request/result, release, abort, and the
//! data SPDU that carries every remote operation (guide ch. 3 "Protocol Dialog", ch. 5).
//!
//! ```text
//! association SPDU (AARQ 0D, AARE 0E, refuse 0C, release rq 09, release rp 0A, abort 19):
//! +------+----+----------------------+----+----+-------------------+------------+----------+---------+
//! | type | LI | session parameters   | C1 | LI | presentation hdr  | BER length | user info| trailer |
//! |  u8  |    | [PI, LI, data]...    |    |    | (fixed BER bytes) | (AARQ/AARE)| MDSEUser | 00 x n  |
//! +------+----+----------------------+----+----+-------------------+------------+----------+---------+
//! LI: one byte below 255, else FF + u16 (ISO 8327 length indicator)
//!
//! data SPDU:  E1 00 | p_context_id: u16 | ROapdus ...           (SPpdu, protocols.md §3)
//!
//! MDSEUserInfoStd (AARQ/AARE user info):
//!   protocol_version u32 | nomenclature_version u32 | functional_units u32 | system_type u32 |
//!   startup_mode u32 | option_list AttributeList | supported_aprofiles AttributeList
//!   supported_aprofiles: AVA NOM_POLL_PROFILE_SUPPORT (1) = PollProfileSupport
//!     poll_profile_revision u32 | min_poll_period RelativeTime | max_mtu_rx u32 | max_mtu_tx u32 |
//!     max_bw_tx u32 | options u32 | optional_packages AttributeList
//!     optional_packages: AVA NOM_ATTR_POLL_PROFILE_EXT (0xF001) = options u32 | ext_attr AttributeList
//! ```
//!
//! Sources: SPDU types VSC (`CN_SPDU_SI 0x0D, AC 0x0E, RF 0x0C, FN 0x09, DN 0x0A, AB 0x19,
//! DA 0xE1`), ICE `AssociationMessageType` (same values), KOS (0x0E accept, 0x0C refuse, 0x19
//! abort). Session parameters and the fixed presentation bytes of AARQ, release and abort: VSC
//! `DataConstants`, ICE `AssociationProtocolImpl` and its message classes, KOS
//! `AssocReqMessage` (AARQ). The AARE presentation bytes and the refuse SPDU are ICE only
//! **[single source]**; medgw's client does not depend on them (it finds the user info after the
//! EXTERNAL marker, as ICE does), only the simulator sends them.

use crate::error::{Error, Result};

use super::attributes::{id, write_attribute_list, write_ava, AttributeList, RelativeTime};
use super::{Reader, Writer};

/// SPDU types (first user-data byte).
pub mod spdu {
    /// Association request (AARQ, "connect").
    pub const CN: u8 = 0x0D;
    /// Association result, accepted (AARE, "accept").
    pub const AC: u8 = 0x0E;
    /// Association refused.
    pub const RF: u8 = 0x0C;
    /// Release request ("finish").
    pub const FN: u8 = 0x09;
    /// Release result ("disconnect").
    pub const DN: u8 = 0x0A;
    /// Abort.
    pub const AB: u8 = 0x19;
    /// Data: every remote operation.
    pub const DA: u8 = 0xE1;
}

/// `MDSEUserInfoStd.protocol_version`: MDDL version 1 (VSC `MDDL_VERSION1`, KOS).
pub const MDDL_VERSION1: u32 = 0x8000_0000;
/// `nomenclature_version` (KOS `NOMEN_VERSION`; VSC sends the same bytes).
pub const NOMEN_VERSION: u32 = 0x4000_0000;
/// `system_type` of a client (KOS `SYST_CLIENT`; VSC sends the same bytes).
pub const SYST_CLIENT: u32 = 0x8000_0000;
/// `system_type` of a server, the monitor (KOS `SYST_SERVER`) **[single source]**.
pub const SYST_SERVER: u32 = 0x0080_0000;
/// `startup_mode` cold start (KOS `COLD_START`; VSC sends it).
pub const COLD_START: u32 = 0x2000_0000;
/// `poll_profile_revision` (KOS `POLL_PROFILE_REV_0`; VSC sends it).
pub const POLL_PROFILE_REV_0: u32 = 0x8000_0000;
/// PollProfileSupport options: dynamic object creation and deletion (KOS names; VSC sends
/// 0x60000000).
pub const P_OPT_DYN_CREATE_OBJECTS: u32 = 0x4000_0000;
pub const P_OPT_DYN_DELETE_OBJECTS: u32 = 0x2000_0000;
/// PollProfileExt options (VSC `PollProfileExtOptions`).
pub const POLL_EXT_PERIOD_NU_1SEC: u32 = 0x8000_0000;
pub const POLL_EXT_PERIOD_RTSA: u32 = 0x0800_0000;
pub const POLL_EXT_ENUM: u32 = 0x0400_0000;

/// Session parameters of AARQ and AARE: PI 0x05 (8 bytes) and PI 0x14 (2 bytes).
const CONNECT_SESSION_PARAMS: [u8; 14] = [0x05, 0x08, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x80, 0x00, 0x14, 0x02, 0x00, 0x02];

/// The presentation prefix of the AARQ up to the user info: CP-type (0x31), mode, the
/// presentation contexts with the OIDs 2A 86 48 CE 14 02 01 00 00 00 01 01 / 02 01 (abstract and
/// transfer syntax), the ACSE AARQ (0x60) with application context 2A 86 48 CE 14 02 01 00 00 00
/// 03 01, and the user-information EXTERNAL (BE 80 28 80, direct reference ...01 01, indirect
/// reference 2) whose octet-aligned [1] (0x81) value is the MDSEUserInfoStd.
const AARQ_PRESENTATION: [u8; 131] = [
    0x31, 0x80, 0xA0, 0x80, 0x80, 0x01, 0x01, 0x00, 0x00, 0xA2, 0x80, 0xA0, 0x03, 0x00, 0x00, 0x01, // CP-type, mode, context list
    0xA4, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0x06, 0x04, 0x52, 0x01, 0x00, 0x01, 0x30, 0x80, 0x06, // context 1: ACSE 52 01 00 01
    0x02, 0x51, 0x01, 0x00, 0x00, 0x00, 0x00, 0x30, 0x80, 0x02, 0x01, 0x02, 0x06, 0x0C, 0x2A, 0x86, // transfer 51 01; context 2
    0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x30, 0x80, 0x06, 0x0C, 0x2A, 0x86, // abstract ..01 01
    0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // transfer ..02 01, EOCs
    0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, 0x60, 0x80, 0xA1, 0x80, 0x06, 0x0C, 0x2A, // user data, AARQ 0x60
    0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0xBE, 0x80, 0x28, // app context ..03 01
    0x80, 0x06, 0x0C, 0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, // EXTERNAL, direct ref
    0x01, 0x02, 0x81, // indirect ref 2, [1] octet-aligned
];

/// The presentation prefix of the AARE (ICE `AssociationAcceptImpl`) **[single source]**: CP-A
/// type, result accepted, the ACSE AARE (0x61) and the user-information EXTERNAL.
const AARE_PRESENTATION: [u8; 101] = [
    0x31, 0x80, 0xA0, 0x80, 0x80, 0x01, 0x01, 0x00, 0x00, 0xA2, 0x80, 0xA0, 0x03, 0x00, 0x00, 0x01, 0xA5, 0x80, 0x30, 0x80, 0x80, 0x01,
    0x00, 0x81, 0x02, 0x51, 0x01, 0x00, 0x00, 0x30, 0x80, 0x80, 0x01, 0x00, 0x81, 0x0C, 0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00,
    0x00, 0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, 0x61, 0x80, 0xA1, 0x80, 0x06,
    0x0C, 0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0xA2, 0x03, 0x02, 0x01, 0x00, 0xA3, 0x05,
    0xA1, 0x03, 0x02, 0x01, 0x00, 0xBE, 0x80, 0x28, 0x80, 0x02, 0x01, 0x02, 0x81,
];

/// End-of-contents octets closing the eight indefinite lengths of AARQ/AARE.
const ASSOC_TRAILER_LEN: usize = 16;

/// Release request presentation bytes (ACSE RLRQ 0x62) and trailer (VSC `rlrq_msg`, ICE
/// `AssociationFinishImpl`).
const RELEASE_REQUEST_PRESENTATION: [u8; 18] =
    [0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, 0x62, 0x80, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00];
/// Release response (ACSE RLRE 0x63) (VSC `rlrq_resp_msg`, ICE `AssociationDisconnectImpl`).
const RELEASE_RESPONSE_PRESENTATION: [u8; 18] =
    [0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, 0x63, 0x80, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00];
/// Abort (ACSE ABRT 0x64) (VSC `assoc_abort_resp_msg`, ICE `AssociationAbortImpl`).
const ABORT_PRESENTATION: [u8; 37] = [
    0xA0, 0x80, 0xA0, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0x06, 0x02, 0x51, 0x01, 0x00, 0x00, 0x00, 0x00, 0x61, 0x80, 0x30, 0x80, 0x02,
    0x01, 0x01, 0xA0, 0x80, 0x64, 0x80, 0x80, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];
const SHORT_TRAILER_LEN: usize = 4;
/// Abort session parameter: PI 0x11, one byte 0x03 (VSC, ICE).
const ABORT_SESSION_PARAMS: [u8; 3] = [0x11, 0x01, 0x03];
/// Refuse session parameter: PI 0x32, one byte 0x00 (ICE) **[single source]**.
const REFUSE_SESSION_PARAMS: [u8; 3] = [0x32, 0x01, 0x00];
/// The presentation PDU tag after the session parameters.
const PRESENTATION_TAG: u8 = 0xC1;

/// Reads an ISO 8327 length indicator.
pub fn read_li(r: &mut Reader<'_>) -> Result<usize> {
    match r.u8()? {
        0xFF => Ok(r.u16()? as usize),
        n => Ok(n as usize),
    }
}

pub fn write_li(w: &mut Writer<'_>, len: usize) -> Result<()> {
    if len < 0xFF {
        w.u8(len as u8)
    } else {
        let len = u16::try_from(len).map_err(|_| Error::TooLong { max: u16::MAX as usize })?;
        w.u8(0xFF)?;
        w.u16(len)
    }
}

fn li_len(len: usize) -> usize {
    if len < 0xFF {
        1
    } else {
        3
    }
}

/// Reads a BER definite length (short form, or long form with one or two length bytes).
pub fn read_ber_len(r: &mut Reader<'_>) -> Result<usize> {
    match r.u8()? {
        n @ 0..=0x7F => Ok(n as usize),
        0x81 => Ok(r.u8()? as usize),
        0x82 => Ok(r.u16()? as usize),
        b => Err(Error::BadField { field: "BER length", value: b as u32 }),
    }
}

fn write_ber_len(w: &mut Writer<'_>, len: usize) -> Result<()> {
    match len {
        0..=0x7F => w.u8(len as u8),
        0x80..=0xFF => w.put(&[0x81, len as u8]),
        _ => {
            let len = u16::try_from(len).map_err(|_| Error::TooLong { max: u16::MAX as usize })?;
            w.u8(0x82)?;
            w.u16(len)
        }
    }
}

fn ber_len_len(len: usize) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0xFF => 2,
        _ => 3,
    }
}

/// The poll profile both sides announce in the association (PollProfileSupport with its
/// PollProfileExt package).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollProfile {
    pub revision: u32,
    /// The shortest poll period the sender will use; it also sets the monitor's connection
    /// time-out (see `client.rs`).
    pub min_poll_period: RelativeTime,
    pub max_mtu_rx: u32,
    pub max_mtu_tx: u32,
    pub max_bw_tx: u32,
    pub options: u32,
    /// PollProfileExt options, when the package is present.
    pub ext_options: Option<u32>,
}

impl PollProfile {
    /// The client's profile: what VSC's numeric-poll AARQ announces (MTU rx 2500, tx 1000,
    /// unlimited bandwidth, dynamic objects, extended 1 s numerics, RTSA and enumeration polls),
    /// with the configured poll period as the minimum.
    pub fn client(min_poll_period: RelativeTime) -> PollProfile {
        PollProfile {
            revision: POLL_PROFILE_REV_0,
            min_poll_period,
            max_mtu_rx: 2500,
            max_mtu_tx: 1000,
            max_bw_tx: 0xFFFF_FFFF,
            options: P_OPT_DYN_CREATE_OBJECTS | P_OPT_DYN_DELETE_OBJECTS,
            ext_options: Some(POLL_EXT_PERIOD_NU_1SEC | POLL_EXT_PERIOD_RTSA | POLL_EXT_ENUM),
        }
    }

    fn parse(bytes: &[u8]) -> Result<PollProfile> {
        let mut r = Reader::new(bytes);
        let revision = r.u32()?;
        let min_poll_period = RelativeTime::read(&mut r)?;
        let max_mtu_rx = r.u32()?;
        let max_mtu_tx = r.u32()?;
        let max_bw_tx = r.u32()?;
        let options = r.u32()?;
        let packages = AttributeList::read(&mut r)?;
        let ext_options = packages.get(id::NOM_ATTR_POLL_PROFILE_EXT).and_then(|v| Reader::new(v).u32().ok());
        Ok(PollProfile { revision, min_poll_period, max_mtu_rx, max_mtu_tx, max_bw_tx, options, ext_options })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u32(self.revision)?;
        w.u32(self.min_poll_period.0)?;
        w.u32(self.max_mtu_rx)?;
        w.u32(self.max_mtu_tx)?;
        w.u32(self.max_bw_tx)?;
        w.u32(self.options)?;
        match self.ext_options {
            Some(ext) => write_attribute_list(w, 1, |w| {
                write_ava(w, id::NOM_ATTR_POLL_PROFILE_EXT, |w| {
                    w.u32(ext)?;
                    write_attribute_list(w, 0, |_| Ok(()))
                })
            }),
            None => write_attribute_list(w, 0, |_| Ok(())),
        }
    }
}

/// MDSEUserInfoStd, the part of the association that the data export layer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserInfo {
    pub protocol_version: u32,
    pub nomenclature_version: u32,
    pub functional_units: u32,
    pub system_type: u32,
    pub startup_mode: u32,
    pub poll_profile: Option<PollProfile>,
}

impl UserInfo {
    pub fn new(system_type: u32, poll_profile: PollProfile) -> UserInfo {
        UserInfo {
            protocol_version: MDDL_VERSION1,
            nomenclature_version: NOMEN_VERSION,
            functional_units: 0,
            system_type,
            startup_mode: COLD_START,
            poll_profile: Some(poll_profile),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<UserInfo> {
        let mut r = Reader::new(bytes);
        let protocol_version = r.u32()?;
        let nomenclature_version = r.u32()?;
        let functional_units = r.u32()?;
        let system_type = r.u32()?;
        let startup_mode = r.u32()?;
        let _option_list = AttributeList::read(&mut r)?;
        let profiles = AttributeList::read(&mut r)?;
        let poll_profile = profiles.get(id::NOM_POLL_PROFILE_SUPPORT).map(PollProfile::parse).transpose()?;
        Ok(UserInfo { protocol_version, nomenclature_version, functional_units, system_type, startup_mode, poll_profile })
    }

    pub fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u32(self.protocol_version)?;
        w.u32(self.nomenclature_version)?;
        w.u32(self.functional_units)?;
        w.u32(self.system_type)?;
        w.u32(self.startup_mode)?;
        write_attribute_list(w, 0, |_| Ok(()))?;
        match &self.poll_profile {
            Some(p) => write_attribute_list(w, 1, |w| write_ava(w, id::NOM_POLL_PROFILE_SUPPORT, |w| p.write(w))),
            None => write_attribute_list(w, 0, |_| Ok(())),
        }
    }
}

/// Writes an association SPDU: type, LI, session parameters, presentation (prefix, BER length,
/// user info, trailer).
fn encode_association(spdu_type: u8, presentation: &[u8], info: &UserInfo, out: &mut [u8]) -> Result<usize> {
    let mut ui = [0u8; 160];
    let mut uw = Writer::new(&mut ui);
    info.write(&mut uw)?;
    let ui_len = uw.len();
    let pres_len = presentation.len() + ber_len_len(ui_len) + ui_len + ASSOC_TRAILER_LEN;
    let total = CONNECT_SESSION_PARAMS.len() + 1 + li_len(pres_len) + pres_len;
    let mut w = Writer::new(out);
    w.u8(spdu_type)?;
    write_li(&mut w, total)?;
    w.put(&CONNECT_SESSION_PARAMS)?;
    w.u8(PRESENTATION_TAG)?;
    write_li(&mut w, pres_len)?;
    w.put(presentation)?;
    write_ber_len(&mut w, ui_len)?;
    w.put(ui.get(..ui_len).unwrap_or(&[]))?;
    w.put(&[0; ASSOC_TRAILER_LEN])?;
    Ok(w.len())
}

/// The association request (AARQ) a client sends.
pub fn encode_aarq(profile: &PollProfile, out: &mut [u8]) -> Result<usize> {
    encode_association(spdu::CN, &AARQ_PRESENTATION, &UserInfo::new(SYST_CLIENT, *profile), out)
}

/// The association result, accepted (AARE), as the monitor sends it.
pub fn encode_aare(profile: &PollProfile, out: &mut [u8]) -> Result<usize> {
    encode_association(spdu::AC, &AARE_PRESENTATION, &UserInfo::new(SYST_SERVER, *profile), out)
}

fn encode_short(spdu_type: u8, params: &[u8], presentation: &[u8], trailer: usize, out: &mut [u8]) -> Result<usize> {
    let pres_len = presentation.len() + trailer;
    let total = params.len() + 1 + li_len(pres_len) + pres_len;
    let mut w = Writer::new(out);
    w.u8(spdu_type)?;
    write_li(&mut w, total)?;
    w.put(params)?;
    w.u8(PRESENTATION_TAG)?;
    write_li(&mut w, pres_len)?;
    w.put(presentation)?;
    for _ in 0..trailer {
        w.u8(0)?;
    }
    Ok(w.len())
}

pub fn encode_release_request(out: &mut [u8]) -> Result<usize> {
    encode_short(spdu::FN, &[], &RELEASE_REQUEST_PRESENTATION, SHORT_TRAILER_LEN, out)
}

pub fn encode_release_response(out: &mut [u8]) -> Result<usize> {
    encode_short(spdu::DN, &[], &RELEASE_RESPONSE_PRESENTATION, SHORT_TRAILER_LEN, out)
}

pub fn encode_abort(out: &mut [u8]) -> Result<usize> {
    encode_short(spdu::AB, &ABORT_SESSION_PARAMS, &ABORT_PRESENTATION, SHORT_TRAILER_LEN, out)
}

pub fn encode_refuse(out: &mut [u8]) -> Result<usize> {
    encode_short(spdu::RF, &REFUSE_SESSION_PARAMS, &[], 0, out)
}

/// The session id of every data SPDU: E1 00.
pub const SESSION_ID: u16 = 0xE100;
/// The presentation context id the clients use (VSC, KOS).
pub const DATA_CONTEXT_ID: u16 = 2;

/// Writes the 4-byte SPpdu header of a data SPDU.
pub fn write_sp_pdu(w: &mut Writer<'_>, context_id: u16) -> Result<()> {
    w.u16(SESSION_ID)?;
    w.u16(context_id)
}

/// One parsed SPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spdu<'a> {
    /// AARQ, with the client's user info when it could be found.
    Connect(Option<UserInfo>),
    /// AARE, with the monitor's user info when it could be found.
    Accept(Option<UserInfo>),
    Refuse,
    ReleaseRequest,
    ReleaseResponse,
    Abort,
    /// A data SPDU: the presentation context and the ROapdus that follow.
    Data {
        context_id: u16,
        apdu: &'a [u8],
    },
}

/// Finds the MDSEUserInfoStd in an association's presentation data: after the last EXTERNAL
/// marker `BE 80 28 80`, an optional direct reference (OID, 0x06) and indirect reference
/// (INTEGER, 0x02), the octet-aligned value `81 len`. ICE locates it the same way
/// (`presentationHeaderEnds`), which tolerates differences in the BER before it.
fn find_user_info(body: &[u8]) -> Option<&[u8]> {
    const MARKER: [u8; 4] = [0xBE, 0x80, 0x28, 0x80];
    let start = body.windows(MARKER.len()).rposition(|w| w == MARKER)? + MARKER.len();
    let mut r = Reader::new(body.get(start..)?);
    loop {
        match r.u8().ok()? {
            0x06 | 0x02 => {
                let n = r.u8().ok()? as usize;
                r.take(n).ok()?;
            }
            0x81 => break,
            _ => return None,
        }
    }
    let len = read_ber_len(&mut r).ok()?;
    r.take(len).ok()
}

/// Parses the user data of one frame at the session layer.
pub fn parse(user_data: &[u8]) -> Result<Spdu<'_>> {
    let mut r = Reader::new(user_data);
    let t = r.u8()?;
    if t == spdu::DA {
        let low = r.u8()?;
        if low != 0 {
            return Err(Error::BadField { field: "session id", value: (t as u32) << 8 | low as u32 });
        }
        let context_id = r.u16()?;
        return Ok(Spdu::Data { context_id, apdu: r.rest() });
    }
    if !matches!(t, spdu::CN | spdu::AC | spdu::RF | spdu::FN | spdu::DN | spdu::AB) {
        return Err(Error::Unsupported { what: "SPDU type", value: t as u32 });
    }
    let len = read_li(&mut r)?;
    let body = r.take(len)?;
    let info = || find_user_info(body).and_then(|b| UserInfo::parse(b).ok());
    Ok(match t {
        spdu::CN => Spdu::Connect(info()),
        spdu::AC => Spdu::Accept(info()),
        spdu::RF => Spdu::Refuse,
        spdu::FN => Spdu::ReleaseRequest,
        spdu::DN => Spdu::ReleaseResponse,
        _ => Spdu::Abort,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aarq(period_ms: u64) -> alloc::vec::Vec<u8> {
        let mut out = [0u8; 512];
        let n = encode_aarq(&PollProfile::client(RelativeTime::from_millis(period_ms)), &mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn aarq_starts_as_protocols_md_says() {
        // protocols.md §3: "The AARQ in VSCaptureMP starts 0D EC 05 08 13 01 00 16 01 02 80 00 14
        // 02 00 02 …": session LI 0xEC = 236 for a 72-byte user info, presentation LI 0xDC.
        let a = aarq(1000);
        assert_eq!(&a[..16], &[0x0D, 0xEC, 0x05, 0x08, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x80, 0x00, 0x14, 0x02, 0x00, 0x02]);
        assert_eq!(&a[16..18], &[0xC1, 0xDC]);
        assert_eq!(a.len(), 2 + 0xEC);
        // The user info: BER length 0x48 after the [1] tag, MDDL version, client, cold start.
        let ui = 18 + AARQ_PRESENTATION.len();
        assert_eq!(a[ui - 1], 0x81);
        assert_eq!(a[ui], 0x48);
        assert_eq!(&a[ui + 1..ui + 5], &[0x80, 0, 0, 0]);
        assert_eq!(&a[ui + 13..ui + 17], &[0x80, 0, 0, 0]);
        // The poll profile (protocols.md: `00 01 00 2C … ` count 1, length 44) with the
        // requested period in 125 us ticks: 1000 ms = 8000 = 0x1F40.
        assert_eq!(&a[ui + 25..ui + 29], &[0x00, 0x01, 0x00, 0x2C]);
        assert_eq!(&a[ui + 33..ui + 41], &[0x80, 0, 0, 0, 0x00, 0x00, 0x1F, 0x40]);
        // The three OIDs of protocols.md §3.
        for oid_tail in [[0x01u8, 0x01], [0x02, 0x01], [0x03, 0x01]] {
            let oid = [0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, oid_tail[0], oid_tail[1]];
            assert!(a.windows(12).any(|w| w == oid), "{oid_tail:02X?}");
        }
        assert_eq!(&a[a.len() - 16..], &[0u8; 16]);
    }

    #[test]
    fn association_round_trips_through_parse() {
        let a = aarq(2500);
        match parse(&a).unwrap() {
            Spdu::Connect(Some(info)) => {
                assert_eq!(info.system_type, SYST_CLIENT);
                let p = info.poll_profile.unwrap();
                assert_eq!(p.min_poll_period, RelativeTime(20_000));
                assert_eq!(p.ext_options, Some(0x8C00_0000));
            }
            other => panic!("{other:?}"),
        }
        let mut out = [0u8; 512];
        let n = encode_aare(&PollProfile::client(RelativeTime(8000)), &mut out).unwrap();
        match parse(&out[..n]).unwrap() {
            Spdu::Accept(Some(info)) => {
                assert_eq!(info.system_type, SYST_SERVER);
                assert_eq!(info.poll_profile.unwrap().min_poll_period, RelativeTime(8000));
            }
            other => panic!("{other:?}"),
        }
        // An AARE whose presentation bytes medgw does not know still counts as an accept.
        assert_eq!(parse(&[0x0E, 0x02, 0xC1, 0x00]).unwrap(), Spdu::Accept(None));
    }

    #[test]
    fn short_spdus_match_the_published_bytes() {
        let mut out = [0u8; 64];
        // Release request: 09 18 C1 16 … (VSC rlrq_msg length fields), 26 bytes in all.
        let n = encode_release_request(&mut out).unwrap();
        assert_eq!(&out[..4], &[0x09, 0x18, 0xC1, 0x16]);
        assert_eq!(n, 26);
        assert_eq!(parse(&out[..n]).unwrap(), Spdu::ReleaseRequest);
        let n = encode_release_response(&mut out).unwrap();
        assert_eq!(&out[..4], &[0x0A, 0x18, 0xC1, 0x16]);
        assert_eq!(&out[11..16], &[0xA0, 0x80, 0x63, 0x80, 0x80]);
        assert_eq!(parse(&out[..n]).unwrap(), Spdu::ReleaseResponse);
        // Abort: 19 2E 11 01 03 C1 29 …, 48 bytes.
        let n = encode_abort(&mut out).unwrap();
        assert_eq!(&out[..7], &[0x19, 0x2E, 0x11, 0x01, 0x03, 0xC1, 0x29]);
        assert_eq!(n, 48);
        assert_eq!(parse(&out[..n]).unwrap(), Spdu::Abort);
        let n = encode_refuse(&mut out).unwrap();
        assert_eq!(&out[..n], &[0x0C, 0x05, 0x32, 0x01, 0x00, 0xC1, 0x00]);
        assert_eq!(parse(&out[..n]).unwrap(), Spdu::Refuse);
    }

    #[test]
    fn data_spdu_and_errors() {
        assert_eq!(parse(&[0xE1, 0x00, 0x00, 0x02, 0xAA]).unwrap(), Spdu::Data { context_id: 2, apdu: &[0xAA] });
        assert_eq!(parse(&[0xE1, 0x01, 0x00, 0x02]), Err(Error::BadField { field: "session id", value: 0xE101 }));
        assert_eq!(parse(&[0x42]), Err(Error::Unsupported { what: "SPDU type", value: 0x42 }));
        assert!(parse(&[0x19, 0x2E, 0x11]).is_err());
        assert!(parse(&[]).is_err());
        // Long LI form.
        let mut long = alloc::vec![0x09, 0xFF, 0x01, 0x00];
        long.extend_from_slice(&[0u8; 256]);
        assert_eq!(parse(&long).unwrap(), Spdu::ReleaseRequest);
    }
}
