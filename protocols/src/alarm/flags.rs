//! Technical alerts from status bits that a decoder already turns into quality flags (Nonin
//! SNSA/OOT/ARTF/LPRF/MPRF/LOW BAT, the medgw sensor node's observation flags).
//!
//! One table row per bit: the flag it sets, the vendor code (the bit's name in the device's
//! documentation), medgw's text, the alert type and the MDC event code where one is confirmed
//! ([`super::codes`]).

use alloc::borrow::Cow;
use alloc::vec::Vec;

use super::{codes, AlarmCondition, AlarmKind};
use crate::mdc::MdcCode;
use crate::observation::{Flags, VendorCode};

/// One status bit that is a technical alert.
#[derive(Clone, Copy, Debug)]
pub struct FlagAlert {
    pub flag: Flags,
    /// The vendor code: the bit's name in the device's documentation.
    pub code: &'static str,
    pub text: &'static str,
    pub kind: AlarmKind,
    pub mdc: MdcCode,
}

const fn row(flag: Flags, code: &'static str, text: &'static str, kind: AlarmKind, mdc: MdcCode) -> FlagAlert {
    FlagAlert { flag, code, text, kind, mdc }
}

/// Nonin status bits (OEM spec 6470-000-01: DF2/DF7 STATUS p. 9, STAT2 p. 10; DF8 STATUS and
/// STATUS2 p. 16; protocols.md §1). DF2/DF7 report perfusion as the RPRF/GPRF colour, which
/// the packet decoder turns into LOW_PERFUSION (red) and MARGINAL_PERFUSION (yellow), the same
/// flags as DF8's LPRF and MPRF.
pub const NONIN: &[FlagAlert] = &[
    row(Flags::SENSOR_OFF, "SNSA", "sensor alarm (sensor off or faulty)", AlarmKind::Technical, MdcCode::UNMAPPED),
    row(Flags::OUT_OF_TRACK, "OOT", "out of track (pulse lost)", AlarmKind::Technical, MdcCode::UNMAPPED),
    // Artifact: MDC_EVT_WAVE_ARTIF_ERR (DICOM CID 3039, 3:432).
    row(Flags::ARTIFACT, "ARTF", "artifact", AlarmKind::Technical, codes::MDC_EVT_WAVE_ARTIF_ERR),
    row(Flags::LOW_PERFUSION, "LPRF", "low perfusion", AlarmKind::Technical, MdcCode::UNMAPPED),
    row(Flags::MARGINAL_PERFUSION, "MPRF", "marginal perfusion", AlarmKind::Advisory, MdcCode::UNMAPPED),
    row(Flags::LOW_BATTERY, "LOW BAT", "low battery", AlarmKind::Technical, MdcCode::UNMAPPED),
];

/// The medgw sensor node's observation flags (docs/link.md): the node sets the canonical
/// flags itself, so the vendor code is the flag's canonical name.
pub const SENSOR_NODE: &[FlagAlert] = &[
    row(Flags::SENSOR_OFF, "sensor-off", "sensor off", AlarmKind::Technical, MdcCode::UNMAPPED),
    row(Flags::OUT_OF_TRACK, "out-of-track", "pulse lost", AlarmKind::Technical, MdcCode::UNMAPPED),
    row(Flags::ARTIFACT, "artifact", "artifact", AlarmKind::Technical, codes::MDC_EVT_WAVE_ARTIF_ERR),
    row(Flags::LOW_PERFUSION, "low-perfusion", "low perfusion", AlarmKind::Technical, MdcCode::UNMAPPED),
    row(Flags::LOW_SIGNAL_QUALITY, "low-signal-quality", "low signal quality", AlarmKind::Technical, MdcCode::UNMAPPED),
    row(Flags::LOW_BATTERY, "low-battery", "low battery", AlarmKind::Technical, MdcCode::UNMAPPED),
    row(Flags::INVALID, "invalid", "invalid measurement", AlarmKind::Technical, MdcCode::UNMAPPED),
];

/// The conditions the flags of one reading raise, in table order.
pub fn conditions(flags: Flags, table: &[FlagAlert], namespace: &'static str, source: MdcCode) -> Vec<AlarmCondition> {
    table
        .iter()
        .filter(|r| flags.contains(r.flag))
        .map(|r| {
            let vendor = VendorCode { namespace: Cow::Borrowed(namespace), code: Cow::Borrowed(r.code) };
            AlarmCondition::new(r.mdc, vendor, source, r.kind, r.text)
        })
        .collect()
}

/// The union of the flags the table turns into alerts: what a decoder compares to decide
/// whether the set changed.
pub fn mask(table: &[FlagAlert]) -> Flags {
    table.iter().fold(Flags::NONE, |m, r| m | r.flag)
}
