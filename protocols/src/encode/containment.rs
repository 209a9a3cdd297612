//! The IEEE 11073 containment tree that an IHE PCD-01 message reports in OBX-4
//! (`MDS.VMD.CHAN.METRIC`), and the device-description codes of its rows.
//!
//! PCD-01 (IHE PCD TF-2, OBX-4 and the DEC examples; hospital-integration.md §6 "PCD-01 as vendors
//! send it"; protocols.md §8) reports a device's observation set in one message: a row for the
//! medical device system (MDS, `1.0.0.0`), one per virtual medical device (VMD, the measurement
//! subsystem: `1.v.0.0`), one per channel (`1.v.c.0`) and the metrics (`1.v.c.m`). The
//! description rows carry the device's MDC code in OBX-3, no value and OBX-11 `X`, as the
//! Philips IntelliBridge, GE B40/B1x5 and Mindray PCD-01 feeds send them.
//!
//! Device codes are partition 1 (object infrastructure) of ISO/IEEE 11073-10101 and come in
//! fours: the device, its `_MDS`, `_VMD` and `_CHAN` at +1, +2, +3. Seen in vendor PCD-01
//! messages: 69965 `MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS` (Philips, GE), 69642/69643
//! `MDC_DEV_ANALY_SAT_O2_VMD`/`_CHAN` (Philips, GE B40), 70686/70687
//! `MDC_DEV_PRESS_BLD_NONINV_VMD`/`_CHAN` (Philips, IHE PCD example), 69854/69855
//! `MDC_DEV_METER_PRESS_BLD_VMD`/`_CHAN`, 69798 `MDC_DEV_ECG_VMD`, 69902/69903
//! `MDC_DEV_METER_TEMP_VMD`/`_CHAN` (GE); 70001/70002 `MDC_DEV_SYS_PT_VENT_MDS`/`_VMD` (a public
//! German FHIR profile of ventilator devices, T-CABS). The others here follow the +1/+2/+3 rule from those.
//! Personal health devices (Bluetooth GATT, whose services "correspond to ISO/IEEE 11073-104xx")
//! name their MDS by the 11073-20601 device specialisation, partition 8: 528384 + (104xx − 10400),
//! e.g. 528388 `MDC_DEV_SPEC_PROFILE_PULS_OXIM` (protocols.md), 528391 `_BP`, 528399 `_SCALE`.

use crate::mdc::{code, MdcCode};
use crate::observation::VendorCode;

/// An MDC device code with its reference id, as OBX-3 writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevCode {
    pub code: u32,
    pub ref_id: &'static str,
}

const fn dev(code: u32, ref_id: &'static str) -> DevCode {
    DevCode { code, ref_id }
}

/// A measurement subsystem: the VMD row and the code its channel rows carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vmd {
    pub vmd: DevCode,
    pub chan: DevCode,
}

pub const MULTI_PARAM_MDS: DevCode = dev(69965, "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS");
const MULTI_PARAM: Vmd =
    Vmd { vmd: dev(69966, "MDC_DEV_MON_PHYSIO_MULTI_PARAM_VMD"), chan: dev(69967, "MDC_DEV_MON_PHYSIO_MULTI_PARAM_CHAN") };
pub const SAT_O2_MDS: DevCode = dev(69641, "MDC_DEV_ANALY_SAT_O2_MDS");
const SAT_O2: Vmd = Vmd { vmd: dev(69642, "MDC_DEV_ANALY_SAT_O2_VMD"), chan: dev(69643, "MDC_DEV_ANALY_SAT_O2_CHAN") };
pub const VENT_MDS: DevCode = dev(70001, "MDC_DEV_SYS_PT_VENT_MDS");
const VENT: Vmd = Vmd { vmd: dev(70002, "MDC_DEV_SYS_PT_VENT_VMD"), chan: dev(70003, "MDC_DEV_SYS_PT_VENT_CHAN") };
const NIBP: Vmd = Vmd { vmd: dev(70686, "MDC_DEV_PRESS_BLD_NONINV_VMD"), chan: dev(70687, "MDC_DEV_PRESS_BLD_NONINV_CHAN") };
const IBP: Vmd = Vmd { vmd: dev(69854, "MDC_DEV_METER_PRESS_BLD_VMD"), chan: dev(69855, "MDC_DEV_METER_PRESS_BLD_CHAN") };
const ECG: Vmd = Vmd { vmd: dev(69798, "MDC_DEV_ECG_VMD"), chan: dev(69799, "MDC_DEV_ECG_CHAN") };
const TEMP: Vmd = Vmd { vmd: dev(69902, "MDC_DEV_METER_TEMP_VMD"), chan: dev(69903, "MDC_DEV_METER_TEMP_CHAN") };

/// The MDS row's code: what kind of system the device is, by its protocol.
pub fn mds(protocol: &str) -> DevCode {
    match protocol {
        // Pulse oximeters. (The medgw sensor node also measures temperature: a monitor.)
        "masimo" => SAT_O2_MDS,
        p if p.starts_with("nonin") => SAT_O2_MDS,
        // Dräger MEDIBUS speakers are ventilators and anaesthesia workstations.
        "medibus" => VENT_MDS,
        "gatt-plx-spot" | "gatt-plx-continuous" => dev(528388, "MDC_DEV_SPEC_PROFILE_PULS_OXIM"),
        "gatt-blood-pressure" => dev(528391, "MDC_DEV_SPEC_PROFILE_BP"),
        "gatt-temperature" => dev(528392, "MDC_DEV_SPEC_PROFILE_TEMP"),
        "gatt-weight" => dev(528399, "MDC_DEV_SPEC_PROFILE_SCALE"),
        "gatt-glucose" => dev(528401, "MDC_DEV_SPEC_PROFILE_GLUCOSE"),
        // IntelliVue and whatever else: a multi-parameter monitor.
        _ => MULTI_PARAM_MDS,
    }
}

/// The VMD a metric belongs to: the measurement subsystem that makes it. A metric of no known
/// subsystem goes into the system's own generic VMD.
pub fn vmd(metric: MdcCode, mds: DevCode) -> Vmd {
    let c = metric;
    if c == code::MDC_PULS_OXIM_SAT_O2
        || c == code::MDC_PULS_OXIM_PULS_RATE
        || c == code::MDC_PLETH_PULS_RATE
        || c == code::MDC_PULS_OXIM_PERF_REL
        || c == code::MDC_PULS_OXIM_PLETH
    {
        return SAT_O2;
    }
    if c == code::MDC_PRESS_BLD_NONINV
        || c == code::MDC_PRESS_BLD_NONINV_SYS
        || c == code::MDC_PRESS_BLD_NONINV_DIA
        || c == code::MDC_PRESS_BLD_NONINV_MEAN
        || c == code::MDC_PULS_RATE_NON_INV
    {
        return NIBP;
    }
    // Invasive pressures: MDC_PRESS_BLD (150016) up to the central venous group (150087).
    if (code::MDC_PRESS_BLD.0..=code::MDC_PRESS_BLD_VEN_CENT_MEAN.0).contains(&c.0) {
        return IBP;
    }
    if c == code::MDC_ECG_HEART_RATE || c == code::MDC_ECG_TIME_PD_RR_GL || c == code::MDC_ECG_ELEC_POTL_II {
        return ECG;
    }
    if [code::MDC_TEMP, code::MDC_TEMP_BODY, code::MDC_TEMP_CORE, code::MDC_TEMP_ESOPH, code::MDC_TEMP_NASOPH, code::MDC_TEMP_SKIN]
        .contains(&c)
        || c == code::MDC_TEMP_TYMP
        || c == code::MDC_TEMP_RECT
    {
        return TEMP;
    }
    match mds.code {
        69641 => SAT_O2,
        70001 => VENT,
        _ => MULTI_PARAM,
    }
}

/// OBX-17 observation method, where the metric says how it was measured: a noninvasive
/// (cuff) or an invasive arterial pressure. SNOMED CT codes of the HL7 vital-signs "blood
/// pressure measurement method" value set: 17146006 "Arterial pressure monitoring,
/// non-invasive method", 77938009 "... invasive method". Nothing a device sends says more
/// (oscillometric or auscultatory), so nothing more is claimed.
pub fn method(metric: MdcCode) -> Option<&'static str> {
    match vmd(metric, MULTI_PARAM_MDS) {
        NIBP if metric != code::MDC_PULS_RATE_NON_INV => Some("17146006^Arterial pressure monitoring, non-invasive method^SCT"),
        IBP if (code::MDC_PRESS_BLD_ART.0..=code::MDC_PRESS_BLD_ART_ABP_MEAN.0).contains(&metric.0) => {
            Some("77938009^Arterial pressure monitoring, invasive method^SCT")
        }
        _ => None,
    }
}

/// OBX-20 observation site (HL7 v2.6 §7.4.2.20, CWE) from the Bluetooth Health Thermometer's
/// Temperature Type (kept as the vendor code `gatt` / `2A1C.type.<n>`, see
/// `wire/gatt/thermometer.rs`): the SNOMED CT body structure of each defined site. The site
/// is where, not how, so it is OBX-20 rather than OBX-17 (method). 2 "body (general)" and the
/// reserved values name no site.
pub fn site(vendor: Option<&VendorCode>) -> Option<&'static str> {
    let v = vendor?;
    if v.namespace != "gatt" {
        return None;
    }
    Some(match v.code.strip_prefix("2A1C.type.")? {
        "1" => "91470000^Axillary region structure^SCT",
        "3" => "48800003^Ear lobule structure^SCT",
        "4" => "7569003^Finger structure^SCT",
        "5" => "122865005^Gastrointestinal tract structure^SCT",
        "6" => "74262004^Oral cavity structure^SCT",
        "7" => "34402009^Rectum structure^SCT",
        "8" => "29707007^Toe structure^SCT",
        "9" => "42859004^Tympanic membrane structure^SCT",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_codes_follow_the_mds_vmd_chan_rule() {
        for v in [MULTI_PARAM, SAT_O2, VENT, NIBP, IBP, ECG, TEMP] {
            assert_eq!(v.chan.code, v.vmd.code + 1, "{}", v.vmd.ref_id);
            assert_eq!(v.vmd.ref_id.strip_suffix("_VMD"), v.chan.ref_id.strip_suffix("_CHAN"));
        }
        for (m, v) in [(MULTI_PARAM_MDS, MULTI_PARAM), (SAT_O2_MDS, SAT_O2), (VENT_MDS, VENT)] {
            assert_eq!(v.vmd.code, m.code + 1, "{}", m.ref_id);
        }
        // Partition 1 (65536 + term code) for devices, partition 8 for PHD specialisations.
        assert_eq!(mds("gatt-blood-pressure").code >> 16, 8);
        assert_eq!(mds("intellivue").code >> 16, 1);
    }
}
