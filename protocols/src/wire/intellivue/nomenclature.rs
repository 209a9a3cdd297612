//! IntelliVue physiological ids and units to IEEE 11073-10101 MDC codes.
//!
//! The Data Export nomenclature uses the 10101 term codes: a physio id is the SCADA term
//! (combined MDC code = `0x20000 | term`) and a NOM_DIM unit code the DIM term (`0x40000 |
//! term`) (protocols.md §3 and §6; VSC `AlertSource`/`UnitCode` enums; ICE `RosettaUnits`).
//! Term codes from 0xF000 up are Philips-private and have no MDC equivalent.
//!
//! Metrics are mapped only when listed below, so that a code is published as MDC only after
//! someone checked it; every other physio id is emitted as `MdcCode::UNMAPPED` with the vendor
//! code (`intellivue`, decimal id) for the nomenclature override. Units follow the partition
//! rule for every standard term, because a unit code says only what the monitor measured in.

use crate::mdc::{code, unit as mdc_unit, MdcCode};

/// Codes the IntelliVue numerics use beyond the vital-sign core (Philips NOM_ term = 10101
/// term, partition 2); they live in the main table, `crate::mdc`.
pub mod extra {
    pub use crate::mdc::code::{
        MDC_AWAY_RESP_RATE, MDC_PRESS_BLD, MDC_PRESS_BLD_ART, MDC_PRESS_BLD_ART_DIA, MDC_PRESS_BLD_ART_MEAN, MDC_PRESS_BLD_ART_PULM,
        MDC_PRESS_BLD_ART_PULM_DIA, MDC_PRESS_BLD_ART_PULM_MEAN, MDC_PRESS_BLD_ART_PULM_SYS, MDC_PRESS_BLD_ART_SYS, MDC_PRESS_BLD_DIA,
        MDC_PRESS_BLD_MEAN, MDC_PRESS_BLD_SYS, MDC_PRESS_BLD_VEN_CENT, MDC_PRESS_BLD_VEN_CENT_DIA, MDC_PRESS_BLD_VEN_CENT_MEAN,
        MDC_PRESS_BLD_VEN_CENT_SYS, MDC_PULS_RATE, MDC_TEMP_CORE, MDC_TEMP_ESOPH, MDC_TEMP_NASOPH, MDC_TEMP_RECT, MDC_TEMP_SKIN,
        MDC_TEMP_TYMP,
    };
}

/// Physio ids (NOM_*, VSC `AlertSource`) that medgw publishes, with their MDC code.
pub mod physio {
    pub const NOM_ECG_CARD_BEAT_RATE: u16 = 16770;
    pub const NOM_PULS_RATE: u16 = 18442;
    pub const NOM_PLETH_PULS_RATE: u16 = 18466;
    pub const NOM_PRESS_BLD: u16 = 18944;
    pub const NOM_PRESS_BLD_NONINV: u16 = 18948;
    pub const NOM_PRESS_BLD_NONINV_SYS: u16 = 18949;
    pub const NOM_PRESS_BLD_NONINV_DIA: u16 = 18950;
    pub const NOM_PRESS_BLD_NONINV_MEAN: u16 = 18951;
    pub const NOM_PRESS_BLD_ART: u16 = 18960;
    pub const NOM_PRESS_BLD_ART_ABP: u16 = 18964;
    pub const NOM_PRESS_BLD_ART_ABP_SYS: u16 = 18965;
    pub const NOM_PRESS_BLD_ART_ABP_DIA: u16 = 18966;
    pub const NOM_PRESS_BLD_ART_ABP_MEAN: u16 = 18967;
    pub const NOM_PRESS_BLD_ART_PULM: u16 = 18972;
    pub const NOM_PRESS_BLD_VEN_CENT: u16 = 19012;
    pub const NOM_TEMP: u16 = 19272;
    pub const NOM_TEMP_CORE: u16 = 19296;
    pub const NOM_TEMP_ESOPH: u16 = 19300;
    pub const NOM_TEMP_NASOPH: u16 = 19308;
    pub const NOM_TEMP_SKIN: u16 = 19316;
    pub const NOM_TEMP_TYMP: u16 = 19320;
    pub const NOM_PULS_OXIM_PERF_REL: u16 = 19376;
    pub const NOM_PULS_OXIM_SAT_O2: u16 = 19384;
    pub const NOM_RESP_RATE: u16 = 20490;
    pub const NOM_AWAY_RESP_RATE: u16 = 20498;
    pub const NOM_CONC_AWAY_CO2_ET: u16 = 20636;
    pub const NOM_AWAY_CO2_ET: u16 = 20656;
    pub const NOM_TEMP_RECT: u16 = 57348;
    /// Philips-private: NBP pulse rate. Not in 10101; published unmapped.
    pub const NOM_PRESS_BLD_NONINV_PULS_RATE: u16 = 61669;
}

/// NOM_DIM unit codes (VSC `UnitCode`).
pub mod dim {
    pub const NOM_DIM_NOS: u16 = 0;
    pub const NOM_DIM_DIMLESS: u16 = 512;
    pub const NOM_DIM_PERCENT: u16 = 544;
    pub const NOM_DIM_BEAT_PER_MIN: u16 = 2720;
    pub const NOM_DIM_RESP_PER_MIN: u16 = 2784;
    pub const NOM_DIM_KILO_PASCAL: u16 = 3843;
    pub const NOM_DIM_MMHG: u16 = 3872;
    pub const NOM_DIM_FAHR: u16 = 4416;
    pub const NOM_DIM_DEGC: u16 = 6048;
}

/// The first Philips-private term code.
pub const PRIVATE_TERM: u16 = 0xF000;

/// The MDC code of a physio id, `None` when medgw does not map it.
pub fn metric(physio_id: u16) -> Option<MdcCode> {
    use physio::*;
    Some(match physio_id {
        NOM_ECG_CARD_BEAT_RATE => code::MDC_ECG_HEART_RATE,
        NOM_PULS_RATE => extra::MDC_PULS_RATE,
        NOM_PLETH_PULS_RATE => code::MDC_PLETH_PULS_RATE,
        NOM_PULS_OXIM_SAT_O2 => code::MDC_PULS_OXIM_SAT_O2,
        NOM_PULS_OXIM_PERF_REL => code::MDC_PULS_OXIM_PERF_REL,
        NOM_PRESS_BLD => extra::MDC_PRESS_BLD,
        18945 => extra::MDC_PRESS_BLD_SYS,
        18946 => extra::MDC_PRESS_BLD_DIA,
        18947 => extra::MDC_PRESS_BLD_MEAN,
        NOM_PRESS_BLD_NONINV => code::MDC_PRESS_BLD_NONINV,
        NOM_PRESS_BLD_NONINV_SYS => code::MDC_PRESS_BLD_NONINV_SYS,
        NOM_PRESS_BLD_NONINV_DIA => code::MDC_PRESS_BLD_NONINV_DIA,
        NOM_PRESS_BLD_NONINV_MEAN => code::MDC_PRESS_BLD_NONINV_MEAN,
        NOM_PRESS_BLD_ART => extra::MDC_PRESS_BLD_ART,
        18961 => extra::MDC_PRESS_BLD_ART_SYS,
        18962 => extra::MDC_PRESS_BLD_ART_DIA,
        18963 => extra::MDC_PRESS_BLD_ART_MEAN,
        NOM_PRESS_BLD_ART_ABP => code::MDC_PRESS_BLD_ART_ABP,
        NOM_PRESS_BLD_ART_ABP_SYS => code::MDC_PRESS_BLD_ART_ABP_SYS,
        NOM_PRESS_BLD_ART_ABP_DIA => code::MDC_PRESS_BLD_ART_ABP_DIA,
        NOM_PRESS_BLD_ART_ABP_MEAN => code::MDC_PRESS_BLD_ART_ABP_MEAN,
        NOM_PRESS_BLD_ART_PULM => extra::MDC_PRESS_BLD_ART_PULM,
        18973 => extra::MDC_PRESS_BLD_ART_PULM_SYS,
        18974 => extra::MDC_PRESS_BLD_ART_PULM_DIA,
        18975 => extra::MDC_PRESS_BLD_ART_PULM_MEAN,
        NOM_PRESS_BLD_VEN_CENT => extra::MDC_PRESS_BLD_VEN_CENT,
        19013 => extra::MDC_PRESS_BLD_VEN_CENT_SYS,
        19014 => extra::MDC_PRESS_BLD_VEN_CENT_DIA,
        19015 => extra::MDC_PRESS_BLD_VEN_CENT_MEAN,
        NOM_RESP_RATE => code::MDC_RESP_RATE,
        NOM_AWAY_RESP_RATE => extra::MDC_AWAY_RESP_RATE,
        // etCO2: 20656 as a partial pressure (mmHg/kPa), 20636 as a concentration (%).
        // [UNCONFIRMED against RTMMS: Philips NOM table only; see protocols.md §6.]
        // Philips exports etCO2 (mmHg) as NOM_AWAY_CO2_ET; PCD-01 and 10101 (RTMMS) publish it as
        // 151708 MDC_CONC_AWAY_CO2_ET (see `crate::mdc::code::MDC_CONC_AWAY_CO2_ET`).
        NOM_AWAY_CO2_ET => code::MDC_CONC_AWAY_CO2_ET,
        NOM_CONC_AWAY_CO2_ET => code::MDC_CONC_AWAY_CO2_ET,
        // NOM_TEMP is the site-unspecified temperature (MDC_TEMP), not MDC_TEMP_BODY.
        NOM_TEMP => code::MDC_TEMP,
        NOM_TEMP_CORE => extra::MDC_TEMP_CORE,
        NOM_TEMP_ESOPH => extra::MDC_TEMP_ESOPH,
        NOM_TEMP_NASOPH => extra::MDC_TEMP_NASOPH,
        NOM_TEMP_SKIN => extra::MDC_TEMP_SKIN,
        NOM_TEMP_TYMP => extra::MDC_TEMP_TYMP,
        NOM_TEMP_RECT => extra::MDC_TEMP_RECT,
        _ => return None,
    })
}

/// Compound blood pressures: the parent code of a systolic/diastolic/mean member. 10101 lays
/// each pressure out as base, base+1 (systolic), base+2 (diastolic), base+3 (mean), which the
/// Philips ids follow (e.g. NOM_PRESS_BLD_NONINV 18948, _SYS 18949, _DIA 18950, _MEAN 18951).
pub fn compound_parent(member: u16) -> Option<MdcCode> {
    const FAMILIES: [u16; 6] = [
        physio::NOM_PRESS_BLD,
        physio::NOM_PRESS_BLD_NONINV,
        physio::NOM_PRESS_BLD_ART,
        physio::NOM_PRESS_BLD_ART_ABP,
        physio::NOM_PRESS_BLD_ART_PULM,
        physio::NOM_PRESS_BLD_VEN_CENT,
    ];
    let base = member & !0x3;
    if member & 0x3 == 0 || !FAMILIES.contains(&base) {
        return None;
    }
    metric(base)
}

/// The MDC unit of a NOM_DIM code: the listed units by name, other standard terms by the
/// partition rule, `UNMAPPED` for "not specified" (0) and Philips-private units.
pub fn unit(nom_dim: u16) -> MdcCode {
    use dim::*;
    match nom_dim {
        NOM_DIM_DIMLESS => mdc_unit::MDC_DIM_DIMLESS,
        NOM_DIM_PERCENT => mdc_unit::MDC_DIM_PERCENT,
        NOM_DIM_BEAT_PER_MIN => mdc_unit::MDC_DIM_BEAT_PER_MIN,
        NOM_DIM_RESP_PER_MIN => mdc_unit::MDC_DIM_RESP_PER_MIN,
        NOM_DIM_MMHG => mdc_unit::MDC_DIM_MMHG,
        NOM_DIM_KILO_PASCAL => mdc_unit::MDC_DIM_KILO_PASCAL,
        NOM_DIM_DEGC => mdc_unit::MDC_DIM_DEGC,
        NOM_DIM_FAHR => mdc_unit::MDC_DIM_FAHR,
        NOM_DIM_NOS => MdcCode::UNMAPPED,
        t if t >= PRIVATE_TERM => MdcCode::UNMAPPED,
        t => MdcCode::dim(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_codes_follow_the_partition_rule() {
        // protocols.md §6: SpO2 150456, pleth PR 149538, ECG HR 147842, NIBP 150021..23,
        // RR 151562, etCO2 151708, PI 150448.
        assert_eq!(metric(0x4BB8), Some(MdcCode(150_456)));
        assert_eq!(metric(18466), Some(MdcCode(149_538)));
        assert_eq!(metric(16770), Some(MdcCode(147_842)));
        assert_eq!(metric(18949).map(|c| c.0), Some(150_021));
        assert_eq!(metric(18950).map(|c| c.0), Some(150_022));
        assert_eq!(metric(18951).map(|c| c.0), Some(150_023));
        assert_eq!(metric(20490).map(|c| c.0), Some(151_562));
        // NOM_AWAY_CO2_ET (20656) is published as 151708 MDC_CONC_AWAY_CO2_ET, not 151728.
        assert_eq!(metric(20656).map(|c| c.0), Some(151_708));
        assert_eq!(metric(19376).map(|c| c.0), Some(150_448));
        // Every other mapped metric is 0x20000 | its physio id.
        for id in 0..=u16::MAX {
            if let Some(c) = metric(id).filter(|_| id != physio::NOM_AWAY_CO2_ET) {
                assert_eq!(c, MdcCode::scada(id), "{id}");
            }
        }
        assert_eq!(extra::MDC_PULS_RATE.0, 149_514);
        assert_eq!(extra::MDC_PRESS_BLD_VEN_CENT_MEAN.0, 150_087);
        assert_eq!(extra::MDC_TEMP_RECT.0, 188_420);
    }

    #[test]
    fn unknown_and_private_ids_are_not_mapped() {
        assert_eq!(metric(physio::NOM_PRESS_BLD_NONINV_PULS_RATE), None);
        assert_eq!(metric(0), None);
        assert_eq!(metric(61_639), None); // NOM_TEMP_GEN_1, private
    }

    #[test]
    fn compound_parents() {
        assert_eq!(compound_parent(physio::NOM_PRESS_BLD_NONINV_SYS), Some(code::MDC_PRESS_BLD_NONINV));
        assert_eq!(compound_parent(physio::NOM_PRESS_BLD_NONINV_MEAN), Some(code::MDC_PRESS_BLD_NONINV));
        assert_eq!(compound_parent(physio::NOM_PRESS_BLD_ART_ABP_DIA), Some(code::MDC_PRESS_BLD_ART_ABP));
        assert_eq!(compound_parent(physio::NOM_PRESS_BLD_NONINV), None);
        assert_eq!(compound_parent(19385), None); // SpO2 + 1 is no compound member
        assert_eq!(compound_parent(61_605), None); // NOM_PRESS_GEN_1_SYS, private
    }

    #[test]
    fn units() {
        assert_eq!(unit(544), mdc_unit::MDC_DIM_PERCENT);
        assert_eq!(unit(0x0AA0), MdcCode(264_864));
        assert_eq!(unit(3872), MdcCode(266_016));
        assert_eq!(unit(6048), MdcCode(268_192));
        // Standard but unlisted: the partition rule (NOM_DIM_X_L_PER_MIN 3072).
        assert_eq!(unit(3072), MdcCode(0x40000 | 3072));
        assert_eq!(unit(0), MdcCode::UNMAPPED);
        assert_eq!(unit(61_441), MdcCode::UNMAPPED); // NOM_DIM_COUNT, private
    }
}
