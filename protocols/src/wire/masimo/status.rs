//! The EXC (exception) and ALARM status words, and the quality flags medgw derives from them.
//!
//! EXC bits: Rad-8 Operator's Manual p. 4-24 (bits 0x1–0x800) and MD PnP `poxrad_discrete.h`
//! (all bits; it names 0x100 "Incompatible Sensor" where the Rad-8 manual says reserved).
//! ALARM bits: MD PnP only; remkolems' experiments on a Rad-8 agree for bits 0–5; Masimo calls
//! the decode proprietary, so the table is [PARTLY UNCONFIRMED] and unknown bits are ignored.
//!
//! EXC → flags (applied to every value of the line unless a row names a tag):
//!
//! | bit      | meaning                          | flag                              |
//! |----------|----------------------------------|-----------------------------------|
//! | 0x000001 | No Sensor                        | SENSOR_OFF                        |
//! | 0x000002 | Defective Sensor                 | INVALID                           |
//! | 0x000004 | Low Perfusion                    | LOW_PERFUSION                     |
//! | 0x000008 | Pulse Search                     | PULSE_SEARCH                      |
//! | 0x000010 | Interference                     | ARTIFACT                          |
//! | 0x000020 | Sensor Off                       | SENSOR_OFF                        |
//! | 0x000040 | Ambient Light                    | ARTIFACT                          |
//! | 0x000080 | Unrecognized Sensor              | INVALID                           |
//! | 0x000100 | Incompatible Sensor              | INVALID                           |
//! | 0x000200 | reserved                         | —                                 |
//! | 0x000400 | Low Signal IQ                    | LOW_SIGNAL_QUALITY                |
//! | 0x000800 | Masimo SET (algorithm running)   | — (the normal state)              |
//! | 0x001000 | No Cable                         | SENSOR_OFF (nothing is measured)  |
//! | 0x002000 | Cable Life Expired               | INVALID                           |
//! | 0x004000 | Incompatible Cable               | INVALID                           |
//! | 0x008000 | Unrecognized Cable               | INVALID                           |
//! | 0x010000 | Defective Cable                  | INVALID                           |
//! | 0x020000 | Sensor Calibrating               | CALIBRATING                       |
//! | 0x040000 | Sensor Life Expired              | INVALID                           |
//! | 0x080000 | Emitter Temp Out of Range        | QUESTIONABLE                      |
//! | 0x100000 | Sensor Current Limit Exceeded    | QUESTIONABLE                      |
//! | 0x200000 | SpCO Low Confidence              | LOW_SIGNAL_QUALITY on SPCO only   |
//! | 0x400000 | SpMET Low Confidence             | LOW_SIGNAL_QUALITY on SPMET only  |
//!
//! ALARM → flags: 0x0010 "alarm active" sets ALARM on every value of the line; the parameter
//! bits set ALARM on their own value (0x0001/0x0002 SpO2 high/low → SPO2, 0x0004/0x0008 pulse
//! rate high/low → BPM, 0x0100/0x0200 → SPCO, 0x0400/0x0800 → SPMET, 0x1000 desaturation index
//! → DESAT, 0x2000 PI rate of change → PIDELTA); 0x0040 low battery sets LOW_BATTERY on every
//! value. 0x0020 "alarm silenced" sets nothing: the condition, not its audibility, is what a
//! value's quality depends on.

use super::line::Tag;
use crate::quality::Flags;

pub const EXC_NO_SENSOR: u32 = 0x000001;
pub const EXC_DEFECTIVE_SENSOR: u32 = 0x000002;
pub const EXC_LOW_PERFUSION: u32 = 0x000004;
pub const EXC_PULSE_SEARCH: u32 = 0x000008;
pub const EXC_INTERFERENCE: u32 = 0x000010;
pub const EXC_SENSOR_OFF: u32 = 0x000020;
pub const EXC_AMBIENT_LIGHT: u32 = 0x000040;
pub const EXC_UNRECOGNIZED_SENSOR: u32 = 0x000080;
pub const EXC_INCOMPATIBLE_SENSOR: u32 = 0x000100;
pub const EXC_LOW_SIGNAL_IQ: u32 = 0x000400;
pub const EXC_MASIMO_SET: u32 = 0x000800;
pub const EXC_NO_CABLE: u32 = 0x001000;
pub const EXC_CABLE_LIFE_EXPIRED: u32 = 0x002000;
pub const EXC_INCOMPATIBLE_CABLE: u32 = 0x004000;
pub const EXC_UNRECOGNIZED_CABLE: u32 = 0x008000;
pub const EXC_DEFECTIVE_CABLE: u32 = 0x010000;
pub const EXC_SENSOR_CALIBRATING: u32 = 0x020000;
pub const EXC_SENSOR_LIFE_EXPIRED: u32 = 0x040000;
pub const EXC_EMITTER_TEMP: u32 = 0x080000;
pub const EXC_CURRENT_LIMIT: u32 = 0x100000;
pub const EXC_SPCO_LOW_CONFIDENCE: u32 = 0x200000;
pub const EXC_SPMET_LOW_CONFIDENCE: u32 = 0x400000;

pub const ALARM_SPO2_HIGH: u32 = 0x0001;
pub const ALARM_SPO2_LOW: u32 = 0x0002;
pub const ALARM_PR_HIGH: u32 = 0x0004;
pub const ALARM_PR_LOW: u32 = 0x0008;
pub const ALARM_ACTIVE: u32 = 0x0010;
pub const ALARM_SILENCED: u32 = 0x0020;
pub const ALARM_LOW_BATTERY: u32 = 0x0040;
pub const ALARM_SPCO_HIGH: u32 = 0x0100;
pub const ALARM_SPCO_LOW: u32 = 0x0200;
pub const ALARM_SPMET_HIGH: u32 = 0x0400;
pub const ALARM_SPMET_LOW: u32 = 0x0800;
pub const ALARM_DESAT_INDEX: u32 = 0x1000;
pub const ALARM_PI_DELTA: u32 = 0x2000;

/// EXC bits that apply to every value, with their flags.
const EXC_FLAGS: &[(u32, Flags)] = &[
    (EXC_NO_SENSOR, Flags::SENSOR_OFF),
    (EXC_DEFECTIVE_SENSOR, Flags::INVALID),
    (EXC_LOW_PERFUSION, Flags::LOW_PERFUSION),
    (EXC_PULSE_SEARCH, Flags::PULSE_SEARCH),
    (EXC_INTERFERENCE, Flags::ARTIFACT),
    (EXC_SENSOR_OFF, Flags::SENSOR_OFF),
    (EXC_AMBIENT_LIGHT, Flags::ARTIFACT),
    (EXC_UNRECOGNIZED_SENSOR, Flags::INVALID),
    (EXC_INCOMPATIBLE_SENSOR, Flags::INVALID),
    (EXC_LOW_SIGNAL_IQ, Flags::LOW_SIGNAL_QUALITY),
    (EXC_NO_CABLE, Flags::SENSOR_OFF),
    (EXC_CABLE_LIFE_EXPIRED, Flags::INVALID),
    (EXC_INCOMPATIBLE_CABLE, Flags::INVALID),
    (EXC_UNRECOGNIZED_CABLE, Flags::INVALID),
    (EXC_DEFECTIVE_CABLE, Flags::INVALID),
    (EXC_SENSOR_CALIBRATING, Flags::CALIBRATING),
    (EXC_SENSOR_LIFE_EXPIRED, Flags::INVALID),
    (EXC_EMITTER_TEMP, Flags::QUESTIONABLE),
    (EXC_CURRENT_LIMIT, Flags::QUESTIONABLE),
];

/// The flags the EXC word puts on the value of `tag`.
pub fn exc_flags(exc: u32, tag: Tag) -> Flags {
    let mut f = Flags::NONE;
    for &(bit, flag) in EXC_FLAGS {
        if exc & bit != 0 {
            f |= flag;
        }
    }
    if (tag == Tag::Spco && exc & EXC_SPCO_LOW_CONFIDENCE != 0) || (tag == Tag::Spmet && exc & EXC_SPMET_LOW_CONFIDENCE != 0) {
        f |= Flags::LOW_SIGNAL_QUALITY;
    }
    f
}

/// The ALARM bits that concern `tag` alone.
const fn alarm_bits(tag: Tag) -> u32 {
    match tag {
        Tag::Spo2 => ALARM_SPO2_HIGH | ALARM_SPO2_LOW,
        Tag::Bpm => ALARM_PR_HIGH | ALARM_PR_LOW,
        Tag::Spco => ALARM_SPCO_HIGH | ALARM_SPCO_LOW,
        Tag::Spmet => ALARM_SPMET_HIGH | ALARM_SPMET_LOW,
        Tag::Desat => ALARM_DESAT_INDEX,
        Tag::Pidelta => ALARM_PI_DELTA,
        _ => 0,
    }
}

/// The flags the ALARM word puts on the value of `tag`.
pub fn alarm_flags(alarm: u32, tag: Tag) -> Flags {
    let mut f = Flags::NONE;
    if alarm & (ALARM_ACTIVE | alarm_bits(tag)) != 0 {
        f |= Flags::ALARM;
    }
    if alarm & ALARM_LOW_BATTERY != 0 {
        f |= Flags::LOW_BATTERY;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masimo_set_alone_is_normal() {
        // MP-1: EXC=000800.
        assert_eq!(exc_flags(0x800, Tag::Spo2), Flags::NONE);
    }

    #[test]
    fn mp2_no_sensor_and_sensor_off() {
        // MP-2: EXC=021.
        assert_eq!(exc_flags(0x021, Tag::Spo2), Flags::SENSOR_OFF);
    }

    #[test]
    fn each_documented_exc_bit() {
        assert_eq!(exc_flags(EXC_LOW_PERFUSION, Tag::Pi), Flags::LOW_PERFUSION);
        assert_eq!(exc_flags(EXC_PULSE_SEARCH, Tag::Bpm), Flags::PULSE_SEARCH);
        assert_eq!(exc_flags(EXC_INTERFERENCE | EXC_AMBIENT_LIGHT, Tag::Spo2), Flags::ARTIFACT);
        assert_eq!(exc_flags(EXC_LOW_SIGNAL_IQ, Tag::Spo2), Flags::LOW_SIGNAL_QUALITY);
        for bit in [EXC_DEFECTIVE_SENSOR, EXC_UNRECOGNIZED_SENSOR, EXC_INCOMPATIBLE_SENSOR, EXC_DEFECTIVE_CABLE, EXC_SENSOR_LIFE_EXPIRED] {
            assert_eq!(exc_flags(bit, Tag::Spo2), Flags::INVALID, "{bit:#x}");
        }
        assert_eq!(exc_flags(EXC_SENSOR_CALIBRATING, Tag::Spo2), Flags::CALIBRATING);
        assert_eq!(exc_flags(0x200, Tag::Spo2), Flags::NONE, "reserved");
        assert_eq!(exc_flags(EXC_SPCO_LOW_CONFIDENCE, Tag::Spo2), Flags::NONE);
        assert_eq!(exc_flags(EXC_SPCO_LOW_CONFIDENCE, Tag::Spco), Flags::LOW_SIGNAL_QUALITY);
        assert_eq!(exc_flags(EXC_SPMET_LOW_CONFIDENCE, Tag::Spmet), Flags::LOW_SIGNAL_QUALITY);
    }

    #[test]
    fn alarm_bits_go_to_their_parameter() {
        assert_eq!(alarm_flags(0, Tag::Spo2), Flags::NONE);
        assert_eq!(alarm_flags(ALARM_SPO2_LOW, Tag::Spo2), Flags::ALARM);
        assert_eq!(alarm_flags(ALARM_SPO2_LOW, Tag::Bpm), Flags::NONE);
        assert_eq!(alarm_flags(ALARM_PR_HIGH, Tag::Bpm), Flags::ALARM);
        assert_eq!(alarm_flags(ALARM_ACTIVE, Tag::Pi), Flags::ALARM);
        assert_eq!(alarm_flags(ALARM_SILENCED, Tag::Spo2), Flags::NONE);
        assert_eq!(alarm_flags(ALARM_LOW_BATTERY, Tag::Pvi), Flags::LOW_BATTERY);
        assert_eq!(alarm_flags(ALARM_PI_DELTA, Tag::Pidelta), Flags::ALARM);
    }
}
