//! IEEE 11073-10101 nomenclature: the codes medgw knows, with their LOINC and UCUM equivalents.
//!
//! A 32-bit MDC code is `(partition << 16) | term` (IEEE 11073-10101 §A.3): partition 2 (SCADA)
//! holds measurements, partition 4 (DIM) units. The tables below are the built-in nomenclature; a
//! site adds or corrects rows without a new build through the override file loaded into
//! [`crate::nomenclature::Nomenclature`].
//!
//! Sources, cited per row as `src`:
//! - `10101`: IEEE 11073-10101 nomenclature as published in NIST RTMMS and repeated in the IHE
//!   PCD-01 example messages (e.g. `150456^MDC_PULS_OXIM_SAT_O2^MDC`).
//! - `104xx`: the IEEE 11073-104xx device specialisations that define the code for that device
//!   class (10404 pulse oximeter, 10407 blood pressure, 10408 thermometer, 10415 weighing scale,
//!   10417 glucose meter).
//! - `Philips`: the IntelliVue Data Export NOM_ tables, which use the 10101 term codes.
//! - LOINC codes of vital signs are from the FHIR R4 vital-signs value set
//!   (`http://hl7.org/fhir/ValueSet/observation-vitalsignresult`); the others are named per row.

use core::fmt;

/// A combined 32-bit IEEE 11073-10101 code: `partition << 16 | term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct MdcCode(pub u32);

impl MdcCode {
    /// Partition 2: supervisory control and data acquisition (measurements).
    pub const PART_SCADA: u16 = 2;
    /// Partition 4: dimensions (units).
    pub const PART_DIM: u16 = 4;
    /// Partition 8: infrastructure (device types, specialisations).
    pub const PART_INFRA: u16 = 8;

    pub const fn from_parts(partition: u16, term: u16) -> MdcCode {
        MdcCode(((partition as u32) << 16) | term as u32)
    }

    /// A measurement (SCADA) code from its 16-bit term code, as IntelliVue and 20601 send it.
    pub const fn scada(term: u16) -> MdcCode {
        MdcCode::from_parts(Self::PART_SCADA, term)
    }

    /// A unit (DIM) code from its 16-bit term code.
    pub const fn dim(term: u16) -> MdcCode {
        MdcCode::from_parts(Self::PART_DIM, term)
    }

    pub const fn partition(&self) -> u16 {
        (self.0 >> 16) as u16
    }

    pub const fn term(&self) -> u16 {
        self.0 as u16
    }

    /// Code 0 is not assigned in any partition; medgw uses it for "not mapped to MDC yet".
    pub const UNMAPPED: MdcCode = MdcCode(0);

    pub const fn is_unmapped(&self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for MdcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Measurement codes (partition 2, SCADA).
pub mod code {
    use super::MdcCode;
    // Pulse oximetry (10404, 10101).
    pub const MDC_PULS_OXIM_SAT_O2: MdcCode = MdcCode::scada(19384); // 150456
    pub const MDC_PULS_OXIM_PULS_RATE: MdcCode = MdcCode::scada(18458); // 149530
    pub const MDC_PLETH_PULS_RATE: MdcCode = MdcCode::scada(18466); // 149538 (Philips NOM_PLETH_PULS_RATE)
    pub const MDC_PULS_OXIM_PERF_REL: MdcCode = MdcCode::scada(19376); // 150448
    pub const MDC_PULS_OXIM_PLETH: MdcCode = MdcCode::scada(19380); // 150452
    /// ECG lead II, the wave (hospital-integration.md §3; Philips NOM_ECG_ELEC_POTL_II 0x0102).
    pub const MDC_ECG_ELEC_POTL_II: MdcCode = MdcCode::scada(258); // 131330
                                                                   // ECG heart rate (10101; Philips NOM_ECG_CARD_BEAT_RATE).
    pub const MDC_ECG_HEART_RATE: MdcCode = MdcCode::scada(16770); // 147842
    /// R-R interval (global), e.g. the RR intervals of the Bluetooth Heart Rate Measurement.
    pub const MDC_ECG_TIME_PD_RR_GL: MdcCode = MdcCode::scada(16168); // 147240
    /// Pulse rate from a non-invasive BP cuff (10407).
    pub const MDC_PULS_RATE_NON_INV: MdcCode = MdcCode::scada(18474); // 149546
                                                                      // Non-invasive blood pressure (10407): the compound and its members.
    pub const MDC_PRESS_BLD_NONINV: MdcCode = MdcCode::scada(18948); // 150020
    pub const MDC_PRESS_BLD_NONINV_SYS: MdcCode = MdcCode::scada(18949); // 150021
    pub const MDC_PRESS_BLD_NONINV_DIA: MdcCode = MdcCode::scada(18950); // 150022
    pub const MDC_PRESS_BLD_NONINV_MEAN: MdcCode = MdcCode::scada(18951); // 150023
                                                                          // Invasive arterial blood pressure (10101 MDC_PRESS_BLD_ART_ABP*).
    pub const MDC_PRESS_BLD_ART_ABP: MdcCode = MdcCode::scada(18964); // 150036
    pub const MDC_PRESS_BLD_ART_ABP_SYS: MdcCode = MdcCode::scada(18965); // 150037
    pub const MDC_PRESS_BLD_ART_ABP_DIA: MdcCode = MdcCode::scada(18966); // 150038
    pub const MDC_PRESS_BLD_ART_ABP_MEAN: MdcCode = MdcCode::scada(18967); // 150039
    /// Pulse rate, source not specified (Philips NOM_PULS_RATE).
    pub const MDC_PULS_RATE: MdcCode = MdcCode::scada(18442); // 149514
                                                              // Blood pressure, site not specified (Philips NOM_PRESS_BLD*).
    pub const MDC_PRESS_BLD: MdcCode = MdcCode::scada(18944); // 150016
    pub const MDC_PRESS_BLD_SYS: MdcCode = MdcCode::scada(18945); // 150017
    pub const MDC_PRESS_BLD_DIA: MdcCode = MdcCode::scada(18946); // 150018
    pub const MDC_PRESS_BLD_MEAN: MdcCode = MdcCode::scada(18947); // 150019
                                                                   // Arterial blood pressure (Philips NOM_PRESS_BLD_ART*).
    pub const MDC_PRESS_BLD_ART: MdcCode = MdcCode::scada(18960); // 150032
    pub const MDC_PRESS_BLD_ART_SYS: MdcCode = MdcCode::scada(18961); // 150033
    pub const MDC_PRESS_BLD_ART_DIA: MdcCode = MdcCode::scada(18962); // 150034
    pub const MDC_PRESS_BLD_ART_MEAN: MdcCode = MdcCode::scada(18963); // 150035
                                                                       // Pulmonary arterial pressure (Philips NOM_PRESS_BLD_ART_PULM*).
    pub const MDC_PRESS_BLD_ART_PULM: MdcCode = MdcCode::scada(18972); // 150044
    pub const MDC_PRESS_BLD_ART_PULM_SYS: MdcCode = MdcCode::scada(18973); // 150045
    pub const MDC_PRESS_BLD_ART_PULM_DIA: MdcCode = MdcCode::scada(18974); // 150046
    pub const MDC_PRESS_BLD_ART_PULM_MEAN: MdcCode = MdcCode::scada(18975); // 150047
                                                                            // Central venous pressure (Philips NOM_PRESS_BLD_VEN_CENT*).
    pub const MDC_PRESS_BLD_VEN_CENT: MdcCode = MdcCode::scada(19012); // 150084
    pub const MDC_PRESS_BLD_VEN_CENT_SYS: MdcCode = MdcCode::scada(19013); // 150085
    pub const MDC_PRESS_BLD_VEN_CENT_DIA: MdcCode = MdcCode::scada(19014); // 150086
    pub const MDC_PRESS_BLD_VEN_CENT_MEAN: MdcCode = MdcCode::scada(19015); // 150087
    /// Airway respiration rate (Philips NOM_AWAY_RESP_RATE).
    pub const MDC_AWAY_RESP_RATE: MdcCode = MdcCode::scada(20498); // 151570
                                                                   // Temperatures by site (Philips NOM_TEMP_*).
    pub const MDC_TEMP_CORE: MdcCode = MdcCode::scada(19296); // 150368
    pub const MDC_TEMP_ESOPH: MdcCode = MdcCode::scada(19300); // 150372
    pub const MDC_TEMP_NASOPH: MdcCode = MdcCode::scada(19308); // 150380
    pub const MDC_TEMP_SKIN: MdcCode = MdcCode::scada(19316); // 150388
    pub const MDC_TEMP_TYMP: MdcCode = MdcCode::scada(19320); // 150392
    pub const MDC_TEMP_RECT: MdcCode = MdcCode::scada(57348); // 188420
                                                              // Respiration (10101).
    pub const MDC_RESP_RATE: MdcCode = MdcCode::scada(20490); // 151562
    pub const MDC_CO2_RESP_RATE: MdcCode = MdcCode::scada(20522); // 151594
    /// End-tidal CO2, the code PCD-01 publishes for etCO2 in mmHg or kPa: 10101 (RTMMS) defines
    /// 151708 `MDC_CONC_AWAY_CO2_ET` as "partial pressure of carbon dioxide in airway gas measured
    /// at the end of expiration" ("concentration (or partial pressure)"), and vendor PCD-01 feeds
    /// send `151708^MDC_CONC_AWAY_CO2_ET^MDC` with `MDC_DIM_MMHG` (a public Mindray HL7 parameter
    /// table). Philips exports the same quantity as NOM_AWAY_CO2_ET (20656), which medgw maps here;
    /// 151728 is not published.
    pub const MDC_CONC_AWAY_CO2_ET: MdcCode = MdcCode::scada(20636); // 151708
                                                                     // Temperature (10408; Philips NOM_TEMP is the unspecified-site code).
    pub const MDC_TEMP_BODY: MdcCode = MdcCode::scada(19292); // 150364
    pub const MDC_TEMP: MdcCode = MdcCode::scada(19272); // 150344
                                                         // Weighing scale (10415).
    pub const MDC_MASS_BODY_ACTUAL: MdcCode = MdcCode::scada(57664); // 188736
    pub const MDC_LEN_BODY_ACTUAL: MdcCode = MdcCode::scada(57668); // 188740
    pub const MDC_RATIO_MASS_BODY_LEN_SQ: MdcCode = MdcCode::scada(57680); // 188752
                                                                           // Glucose (10417).
    pub const MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD: MdcCode = MdcCode::scada(29112);
    // 160184
}

/// Unit codes (partition 4, DIM).
pub mod unit {
    use super::MdcCode;
    pub const MDC_DIM_DIMLESS: MdcCode = MdcCode::dim(512); // 262656
    pub const MDC_DIM_PERCENT: MdcCode = MdcCode::dim(544); // 262688
    pub const MDC_DIM_BEAT_PER_MIN: MdcCode = MdcCode::dim(2720); // 264864
    pub const MDC_DIM_RESP_PER_MIN: MdcCode = MdcCode::dim(2784); // 264928
    pub const MDC_DIM_MMHG: MdcCode = MdcCode::dim(3872); // 266016
    /// Millivolt, the unit of ECG waves (MDC_DIM_VOLT 4256 with the milli prefix 18).
    pub const MDC_DIM_MILLI_VOLT: MdcCode = MdcCode::dim(4274); // 266418
    pub const MDC_DIM_KILO_PASCAL: MdcCode = MdcCode::dim(3843); // 265987
    pub const MDC_DIM_DEGC: MdcCode = MdcCode::dim(6048); // 268192
    /// 10408 defines 4416; one vendor HL7 sample in public code writes 268224 for °F, which is
    /// not what the thermometer specialisation says.
    pub const MDC_DIM_FAHR: MdcCode = MdcCode::dim(4416); // 266560
    pub const MDC_DIM_KILO_G: MdcCode = MdcCode::dim(1731); // 263875
    pub const MDC_DIM_LB: MdcCode = MdcCode::dim(1760); // 263904
    pub const MDC_DIM_CENTI_M: MdcCode = MdcCode::dim(1297); // 263441
    pub const MDC_DIM_INCH: MdcCode = MdcCode::dim(1376); // 263520
    pub const MDC_DIM_KG_PER_M_SQ: MdcCode = MdcCode::dim(1952); // 264096
    pub const MDC_DIM_MILLI_G_PER_DL: MdcCode = MdcCode::dim(2130); // 264274
    pub const MDC_DIM_MILLI_MOLE_PER_L: MdcCode = MdcCode::dim(4722); // 266866
    /// Seconds 2176 + the milli prefix 18 (IEEE 11073-10101 unit prefixes; RTMMS and PCD-01
    /// examples `264338^MDC_DIM_MILLI_SEC`). One public table writes 2177, which is deka-.
    pub const MDC_DIM_MILLI_SEC: MdcCode = MdcCode::dim(2194); // 264338
    /// MDC_DIM_X_JOULES is 3968 (10101 dimension table) and the kilo prefix adds 3, as in
    /// MDC_DIM_KILO_PASCAL (3840 + 3) and MDC_DIM_KILO_G (1728 + 3). The Bluetooth Heart Rate
    /// Measurement's energy expended is in kJ.
    pub const MDC_DIM_KILO_JOULES: MdcCode = MdcCode::dim(3971); // 266115
}

/// One row of the measurement table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub code: MdcCode,
    /// The 10101 reference id, e.g. `MDC_PULS_OXIM_SAT_O2`.
    pub ref_id: &'static str,
    pub display: &'static str,
    /// LOINC codes, most specific first. Empty where no LOINC code is verified.
    pub loinc: &'static [&'static str],
    /// The FHIR R4 vital-signs profile this metric conforms to, if its LOINC is a vital sign.
    pub vital_profile: Option<&'static str>,
    /// The unit FHIR output uses; values in another unit are converted (see [`crate::units`]).
    pub fhir_unit: Option<MdcCode>,
    /// For compound metrics (blood pressure), the member codes in display order.
    pub components: &'static [MdcCode],
    /// Where the code comes from.
    pub src: &'static str,
}

/// One row of the unit table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitDef {
    pub code: MdcCode,
    pub ref_id: &'static str,
    /// The UCUM code (case-sensitive form), as FHIR `valueQuantity.code` requires.
    pub ucum: &'static str,
    /// Human-readable symbol for displays.
    pub display: &'static str,
}

#[cfg(test)]
const VS: &str = "http://hl7.org/fhir/StructureDefinition/";

/// The URL of an R4 vital-signs profile.
macro_rules! vs {
    ($name:literal) => {
        concat!("http://hl7.org/fhir/StructureDefinition/", $name)
    };
}

macro_rules! metric {
    ($code:ident, $display:expr, [$($loinc:expr),*], $profile:expr, $unit:expr, [$($comp:ident),*], $src:expr) => {
        MetricDef {
            code: code::$code,
            ref_id: stringify!($code),
            display: $display,
            loinc: &[$($loinc),*],
            vital_profile: $profile,
            fhir_unit: $unit,
            components: &[$(code::$comp),*],
            src: $src,
        }
    };
}

/// The built-in measurement table.
pub static METRICS: &[MetricDef] = &[
    // SpO2: LOINC 2708-6 (vital-signs value set, required by the oxygensat profile) and 59408-5
    // (pulse oximetry, added by US Core).
    metric!(MDC_PULS_OXIM_SAT_O2, "SpO2", ["59408-5", "2708-6"], Some(vs!("oxygensat")), Some(unit::MDC_DIM_PERCENT), [], "10404"),
    metric!(
        MDC_PULS_OXIM_PULS_RATE,
        "Pulse rate (oximeter)",
        ["8867-4"],
        Some(vs!("heartrate")),
        Some(unit::MDC_DIM_BEAT_PER_MIN),
        [],
        "10404"
    ),
    metric!(MDC_PLETH_PULS_RATE, "Pulse rate (pleth)", ["8867-4"], Some(vs!("heartrate")), Some(unit::MDC_DIM_BEAT_PER_MIN), [], "Philips"),
    // Perfusion index: LOINC 61006-3 "Perfusion index Tissue by Pulse oximetry" (not a vital sign).
    metric!(MDC_PULS_OXIM_PERF_REL, "Perfusion index", ["61006-3"], None, Some(unit::MDC_DIM_PERCENT), [], "10404"),
    metric!(MDC_PULS_OXIM_PLETH, "Plethysmogram", [], None, None, [], "10404"),
    metric!(MDC_ECG_ELEC_POTL_II, "ECG lead II", [], None, Some(unit::MDC_DIM_MILLI_VOLT), [], "10101"),
    metric!(MDC_ECG_HEART_RATE, "Heart rate (ECG)", ["8867-4"], Some(vs!("heartrate")), Some(unit::MDC_DIM_BEAT_PER_MIN), [], "10101"),
    metric!(MDC_ECG_TIME_PD_RR_GL, "RR interval", [], None, Some(unit::MDC_DIM_MILLI_SEC), [], "10101"),
    metric!(MDC_PULS_RATE_NON_INV, "Pulse rate (NIBP)", ["8867-4"], Some(vs!("heartrate")), Some(unit::MDC_DIM_BEAT_PER_MIN), [], "10407"),
    // Blood pressure: panel 85354-9 with systolic 8480-6, diastolic 8462-4 and mean 8478-0.
    metric!(
        MDC_PRESS_BLD_NONINV,
        "NIBP",
        ["85354-9"],
        Some(vs!("bp")),
        Some(unit::MDC_DIM_MMHG),
        [MDC_PRESS_BLD_NONINV_SYS, MDC_PRESS_BLD_NONINV_DIA, MDC_PRESS_BLD_NONINV_MEAN],
        "10407"
    ),
    metric!(MDC_PRESS_BLD_NONINV_SYS, "NIBP systolic", ["8480-6"], None, Some(unit::MDC_DIM_MMHG), [], "10407"),
    metric!(MDC_PRESS_BLD_NONINV_DIA, "NIBP diastolic", ["8462-4"], None, Some(unit::MDC_DIM_MMHG), [], "10407"),
    metric!(MDC_PRESS_BLD_NONINV_MEAN, "NIBP mean", ["8478-0"], None, Some(unit::MDC_DIM_MMHG), [], "10407"),
    // Invasive arterial pressure: the method-less BP LOINC codes; the MDC code carries "invasive".
    metric!(
        MDC_PRESS_BLD_ART_ABP,
        "ABP",
        ["85354-9"],
        Some(vs!("bp")),
        Some(unit::MDC_DIM_MMHG),
        [MDC_PRESS_BLD_ART_ABP_SYS, MDC_PRESS_BLD_ART_ABP_DIA, MDC_PRESS_BLD_ART_ABP_MEAN],
        "10101"
    ),
    metric!(MDC_PRESS_BLD_ART_ABP_SYS, "ABP systolic", ["8480-6"], None, Some(unit::MDC_DIM_MMHG), [], "10101"),
    metric!(MDC_PRESS_BLD_ART_ABP_DIA, "ABP diastolic", ["8462-4"], None, Some(unit::MDC_DIM_MMHG), [], "10101"),
    metric!(MDC_PRESS_BLD_ART_ABP_MEAN, "ABP mean", ["8478-0"], None, Some(unit::MDC_DIM_MMHG), [], "10101"),
    metric!(MDC_PULS_RATE, "Pulse rate", ["8867-4"], Some(vs!("heartrate")), Some(unit::MDC_DIM_BEAT_PER_MIN), [], "Philips"),
    metric!(
        MDC_PRESS_BLD,
        "Blood pressure (site unspecified)",
        [],
        None,
        Some(unit::MDC_DIM_MMHG),
        [MDC_PRESS_BLD_SYS, MDC_PRESS_BLD_DIA, MDC_PRESS_BLD_MEAN],
        "Philips"
    ),
    metric!(MDC_PRESS_BLD_SYS, "BP systolic (site unspecified)", [], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(MDC_PRESS_BLD_DIA, "BP diastolic (site unspecified)", [], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(MDC_PRESS_BLD_MEAN, "BP mean (site unspecified)", [], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(
        MDC_PRESS_BLD_ART,
        "ART",
        ["85354-9"],
        Some(vs!("bp")),
        Some(unit::MDC_DIM_MMHG),
        [MDC_PRESS_BLD_ART_SYS, MDC_PRESS_BLD_ART_DIA, MDC_PRESS_BLD_ART_MEAN],
        "Philips"
    ),
    metric!(MDC_PRESS_BLD_ART_SYS, "ART systolic", ["8480-6"], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(MDC_PRESS_BLD_ART_DIA, "ART diastolic", ["8462-4"], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(MDC_PRESS_BLD_ART_MEAN, "ART mean", ["8478-0"], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    // Pulmonary and central venous pressures are not systemic blood pressure: MDC only.
    metric!(
        MDC_PRESS_BLD_ART_PULM,
        "PAP",
        [],
        None,
        Some(unit::MDC_DIM_MMHG),
        [MDC_PRESS_BLD_ART_PULM_SYS, MDC_PRESS_BLD_ART_PULM_DIA, MDC_PRESS_BLD_ART_PULM_MEAN],
        "Philips"
    ),
    metric!(MDC_PRESS_BLD_ART_PULM_SYS, "PAP systolic", [], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(MDC_PRESS_BLD_ART_PULM_DIA, "PAP diastolic", [], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(MDC_PRESS_BLD_ART_PULM_MEAN, "PAP mean", [], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(
        MDC_PRESS_BLD_VEN_CENT,
        "CVP",
        [],
        None,
        Some(unit::MDC_DIM_MMHG),
        [MDC_PRESS_BLD_VEN_CENT_SYS, MDC_PRESS_BLD_VEN_CENT_DIA, MDC_PRESS_BLD_VEN_CENT_MEAN],
        "Philips"
    ),
    metric!(MDC_PRESS_BLD_VEN_CENT_SYS, "CVP systolic", [], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(MDC_PRESS_BLD_VEN_CENT_DIA, "CVP diastolic", [], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(MDC_PRESS_BLD_VEN_CENT_MEAN, "CVP mean", [], None, Some(unit::MDC_DIM_MMHG), [], "Philips"),
    metric!(
        MDC_AWAY_RESP_RATE,
        "Respiratory rate (airway)",
        ["9279-1"],
        Some(vs!("resprate")),
        Some(unit::MDC_DIM_RESP_PER_MIN),
        [],
        "Philips"
    ),
    metric!(MDC_TEMP_CORE, "Temperature (core)", [], None, Some(unit::MDC_DIM_DEGC), [], "Philips"),
    metric!(MDC_TEMP_ESOPH, "Temperature (oesophageal)", [], None, Some(unit::MDC_DIM_DEGC), [], "Philips"),
    metric!(MDC_TEMP_NASOPH, "Temperature (nasopharyngeal)", [], None, Some(unit::MDC_DIM_DEGC), [], "Philips"),
    metric!(MDC_TEMP_SKIN, "Temperature (skin)", [], None, Some(unit::MDC_DIM_DEGC), [], "Philips"),
    metric!(MDC_TEMP_TYMP, "Temperature (tympanic)", [], None, Some(unit::MDC_DIM_DEGC), [], "Philips"),
    metric!(MDC_TEMP_RECT, "Temperature (rectal)", [], None, Some(unit::MDC_DIM_DEGC), [], "Philips"),
    metric!(MDC_RESP_RATE, "Respiratory rate", ["9279-1"], Some(vs!("resprate")), Some(unit::MDC_DIM_RESP_PER_MIN), [], "10101"),
    metric!(MDC_CO2_RESP_RATE, "Respiratory rate (CO2)", ["9279-1"], Some(vs!("resprate")), Some(unit::MDC_DIM_RESP_PER_MIN), [], "10101"),
    // etCO2 partial pressure: LOINC 19891-1 "Carbon dioxide [Partial pressure] in Exhaled gas
    // --at end expiration". 10101 code 151708 (see `code::MDC_CONC_AWAY_CO2_ET`).
    metric!(MDC_CONC_AWAY_CO2_ET, "etCO2", ["19891-1"], None, Some(unit::MDC_DIM_MMHG), [], "10101"),
    metric!(MDC_TEMP_BODY, "Body temperature", ["8310-5"], Some(vs!("bodytemp")), Some(unit::MDC_DIM_DEGC), [], "10408"),
    metric!(MDC_TEMP, "Temperature (site unspecified)", [], None, Some(unit::MDC_DIM_DEGC), [], "Philips"),
    metric!(MDC_MASS_BODY_ACTUAL, "Body weight", ["29463-7"], Some(vs!("bodyweight")), Some(unit::MDC_DIM_KILO_G), [], "10415"),
    metric!(MDC_LEN_BODY_ACTUAL, "Body height", ["8302-2"], Some(vs!("bodyheight")), Some(unit::MDC_DIM_CENTI_M), [], "10415"),
    metric!(MDC_RATIO_MASS_BODY_LEN_SQ, "BMI", ["39156-5"], Some(vs!("bmi")), Some(unit::MDC_DIM_KG_PER_M_SQ), [], "10415"),
    // Glucose: LOINC 41653-7 "Glucose [Mass/volume] in Capillary blood by Glucometer".
    metric!(
        MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD,
        "Glucose (capillary whole blood)",
        ["41653-7"],
        None,
        Some(unit::MDC_DIM_MILLI_G_PER_DL),
        [],
        "10417"
    ),
];

macro_rules! unit_def {
    ($code:ident, $ucum:expr, $display:expr) => {
        UnitDef { code: unit::$code, ref_id: stringify!($code), ucum: $ucum, display: $display }
    };
}

/// The built-in unit table (UCUM codes per the FHIR R4 vital-signs profiles where they apply).
pub static UNITS: &[UnitDef] = &[
    unit_def!(MDC_DIM_DIMLESS, "1", ""),
    unit_def!(MDC_DIM_PERCENT, "%", "%"),
    unit_def!(MDC_DIM_BEAT_PER_MIN, "/min", "bpm"),
    unit_def!(MDC_DIM_RESP_PER_MIN, "/min", "rpm"),
    unit_def!(MDC_DIM_MMHG, "mm[Hg]", "mmHg"),
    unit_def!(MDC_DIM_MILLI_VOLT, "mV", "mV"),
    unit_def!(MDC_DIM_KILO_PASCAL, "kPa", "kPa"),
    unit_def!(MDC_DIM_DEGC, "Cel", "°C"),
    unit_def!(MDC_DIM_FAHR, "[degF]", "°F"),
    unit_def!(MDC_DIM_KILO_G, "kg", "kg"),
    unit_def!(MDC_DIM_LB, "[lb_av]", "lb"),
    unit_def!(MDC_DIM_CENTI_M, "cm", "cm"),
    unit_def!(MDC_DIM_INCH, "[in_i]", "in"),
    unit_def!(MDC_DIM_KG_PER_M_SQ, "kg/m2", "kg/m²"),
    unit_def!(MDC_DIM_MILLI_G_PER_DL, "mg/dL", "mg/dL"),
    unit_def!(MDC_DIM_MILLI_MOLE_PER_L, "mmol/L", "mmol/L"),
    unit_def!(MDC_DIM_MILLI_SEC, "ms", "ms"),
    // UCUM `kJ`: the SI prefix k on the joule `J`.
    unit_def!(MDC_DIM_KILO_JOULES, "kJ", "kJ"),
];

/// The built-in row for a measurement code.
pub fn metric(code: MdcCode) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.code == code)
}

/// The built-in row for a measurement reference id such as `MDC_PULS_OXIM_SAT_O2`.
pub fn metric_by_ref_id(ref_id: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.ref_id == ref_id)
}

/// The built-in row for a unit code.
pub fn unit(code: MdcCode) -> Option<&'static UnitDef> {
    UNITS.iter().find(|u| u.code == code)
}

/// The built-in row for a unit reference id such as `MDC_DIM_PERCENT`.
pub fn unit_by_ref_id(ref_id: &str) -> Option<&'static UnitDef> {
    UNITS.iter().find(|u| u.ref_id == ref_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combined code written in the comments above and in the reference tables, checked
    /// against the partition/term arithmetic, so a typo in either shows up here.
    #[test]
    fn combined_codes_match_partition_and_term() {
        let expected: &[(MdcCode, u32)] = &[
            (code::MDC_PULS_OXIM_SAT_O2, 150456),
            (code::MDC_PULS_OXIM_PULS_RATE, 149530),
            (code::MDC_PLETH_PULS_RATE, 149538),
            (code::MDC_PULS_OXIM_PERF_REL, 150448),
            (code::MDC_PULS_OXIM_PLETH, 150452),
            (code::MDC_ECG_ELEC_POTL_II, 131330),
            (code::MDC_ECG_HEART_RATE, 147842),
            (code::MDC_PULS_RATE_NON_INV, 149546),
            (code::MDC_ECG_TIME_PD_RR_GL, 147240),
            (code::MDC_PRESS_BLD_NONINV, 150020),
            (code::MDC_PRESS_BLD_NONINV_SYS, 150021),
            (code::MDC_PRESS_BLD_NONINV_DIA, 150022),
            (code::MDC_PRESS_BLD_NONINV_MEAN, 150023),
            (code::MDC_PRESS_BLD_ART_ABP, 150036),
            (code::MDC_PRESS_BLD_ART_ABP_SYS, 150037),
            (code::MDC_PRESS_BLD_ART_ABP_DIA, 150038),
            (code::MDC_PRESS_BLD_ART_ABP_MEAN, 150039),
            (code::MDC_RESP_RATE, 151562),
            (code::MDC_CO2_RESP_RATE, 151594),
            (code::MDC_CONC_AWAY_CO2_ET, 151708),
            (code::MDC_TEMP_BODY, 150364),
            (code::MDC_TEMP, 150344),
            (code::MDC_MASS_BODY_ACTUAL, 188736),
            (code::MDC_LEN_BODY_ACTUAL, 188740),
            (code::MDC_RATIO_MASS_BODY_LEN_SQ, 188752),
            (code::MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD, 160184),
            (unit::MDC_DIM_DIMLESS, 262656),
            (unit::MDC_DIM_MILLI_VOLT, 266418),
            (unit::MDC_DIM_PERCENT, 262688),
            (unit::MDC_DIM_BEAT_PER_MIN, 264864),
            (unit::MDC_DIM_RESP_PER_MIN, 264928),
            (unit::MDC_DIM_MMHG, 266016),
            (unit::MDC_DIM_KILO_PASCAL, 265987),
            (unit::MDC_DIM_DEGC, 268192),
            (unit::MDC_DIM_FAHR, 266560),
            (unit::MDC_DIM_KILO_G, 263875),
            (unit::MDC_DIM_LB, 263904),
            (unit::MDC_DIM_CENTI_M, 263441),
            (unit::MDC_DIM_INCH, 263520),
            (unit::MDC_DIM_KG_PER_M_SQ, 264096),
            (unit::MDC_DIM_MILLI_G_PER_DL, 264274),
            (unit::MDC_DIM_MILLI_MOLE_PER_L, 266866),
            (unit::MDC_DIM_MILLI_SEC, 264338),
            (unit::MDC_DIM_KILO_JOULES, 266115),
            (code::MDC_PULS_RATE, 149514),
            (code::MDC_PRESS_BLD, 150016),
            (code::MDC_PRESS_BLD_MEAN, 150019),
            (code::MDC_PRESS_BLD_ART, 150032),
            (code::MDC_PRESS_BLD_ART_MEAN, 150035),
            (code::MDC_PRESS_BLD_ART_PULM, 150044),
            (code::MDC_PRESS_BLD_VEN_CENT, 150084),
            (code::MDC_PRESS_BLD_VEN_CENT_MEAN, 150087),
            (code::MDC_AWAY_RESP_RATE, 151570),
            (code::MDC_TEMP_CORE, 150368),
            (code::MDC_TEMP_TYMP, 150392),
            (code::MDC_TEMP_RECT, 188420),
        ];
        for (code, combined) in expected {
            assert_eq!(code.0, *combined, "{code:?}");
            assert_eq!(MdcCode::from_parts(code.partition(), code.term()), *code);
        }
    }

    #[test]
    fn every_metric_row_is_consistent() {
        for (i, m) in METRICS.iter().enumerate() {
            assert_eq!(m.code.partition(), MdcCode::PART_SCADA, "{}", m.ref_id);
            assert!(m.ref_id.starts_with("MDC_"), "{}", m.ref_id);
            assert_eq!(metric_by_ref_id(m.ref_id).map(|r| r.code), Some(m.code));
            // No code appears twice.
            assert!(METRICS[i + 1..].iter().all(|o| o.code != m.code), "{} twice", m.ref_id);
            if let Some(u) = m.fhir_unit {
                assert!(unit(u).is_some(), "{}: unit {u} not in the unit table", m.ref_id);
            }
            for c in m.components {
                let member = metric(*c).unwrap_or_else(|| panic!("{}: component {c} missing", m.ref_id));
                assert!(member.components.is_empty());
            }
            if let Some(p) = m.vital_profile {
                assert!(p.starts_with(VS) && p.len() > VS.len() && !p.ends_with("vitalsigns"), "{p}");
                assert!(!m.loinc.is_empty(), "{}: vital sign without LOINC", m.ref_id);
            }
            for l in m.loinc {
                assert!(crate::nomenclature::loinc_ok(l), "{}: bad LOINC {l}", m.ref_id);
            }
        }
        for u in UNITS {
            assert_eq!(u.code.partition(), MdcCode::PART_DIM, "{}", u.ref_id);
            assert_eq!(unit_by_ref_id(u.ref_id).map(|r| r.code), Some(u.code));
            assert!(!u.ucum.is_empty());
        }
    }
}
