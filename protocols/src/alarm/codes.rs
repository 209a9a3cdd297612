//! IEEE 11073-10101 event codes (partition 3, EVT) that medgw emits, each with its sources.
//!
//! A combined code is `3 << 16 | term` (= 196608 + term). Only codes confirmed by two public
//! sources, or by the DICOM reprint of the 10101 table, are used to identify an alarm; a
//! condition without one is sent with its vendor code and [`MdcCode::UNMAPPED`].
//!
//! | code   | reference id            | term | sources |
//! |--------|-------------------------|------|---------|
//! | 196616 | MDC_EVT_ALARM           | 8    | IHE PCD-04 OBR-4 in the Dräger AR↔AM notes and the GE Mural sample (hospital-integration.md §2); a PCD-04 parser's spec notes ("non-numeric") |
//! | 196648 | MDC_EVT_HI              | 40   | BIH-CEI T-CABS IG (limit exceedance, partition 3); hospital-integration.md §5 E2; PCD-04 samples |
//! | 196670 | MDC_EVT_LO              | 62   | BIH-CEI T-CABS IG; a PCD-04 test message (`196670^MDC_EVT_LO^MDC`, SpO2 42); a PCD-04 implementation guide's OBX #1 notes |
//! | 196876 | MDC_EVT_LEAD_DISCONN    | 268  | DICOM PS3.16 CID 3039 (`MDC 3:268`, reprinted from 10101 by permission of IEEE) |
//! | 197040 | MDC_EVT_WAVE_ARTIF_ERR  | 432  | DICOM PS3.16 CID 3039 (`MDC 3:432`) |
//!
//! Seen in one source only, so **not** used (kept here so nobody adds them unchecked):
//! MDC_EVT_SENSOR_DISCONN 196916 (a GHS Kotlin enum), MDC_EVT_BATT_LO 196802 and MDC_EVT_DESAT
//! 199854 (a Dräger SDC constants header), MDC_EVT_HI_GT_LIM 196650 / MDC_EVT_LO_LT_LIM 196672
//! (same header).

use crate::mdc::MdcCode;

/// Partition 3: events.
pub const PART_EVT: u16 = 3;

/// An event code from its term code.
pub const fn evt(term: u16) -> MdcCode {
    MdcCode::from_parts(PART_EVT, term)
}

pub const MDC_EVT_ALARM: MdcCode = evt(8);
pub const MDC_EVT_HI: MdcCode = evt(40);
pub const MDC_EVT_LO: MdcCode = evt(62);
pub const MDC_EVT_LEAD_DISCONN: MdcCode = evt(268);
pub const MDC_EVT_WAVE_ARTIF_ERR: MdcCode = evt(432);

/// The reference id of a code medgw knows, for HL7 v2 CWE text and FHIR display.
pub fn ref_id(code: MdcCode) -> Option<&'static str> {
    Some(match code {
        MDC_EVT_ALARM => "MDC_EVT_ALARM",
        MDC_EVT_HI => "MDC_EVT_HI",
        MDC_EVT_LO => "MDC_EVT_LO",
        MDC_EVT_LEAD_DISCONN => "MDC_EVT_LEAD_DISCONN",
        MDC_EVT_WAVE_ARTIF_ERR => "MDC_EVT_WAVE_ARTIF_ERR",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_codes_match_the_published_numbers() {
        // The numbers as the sources print them.
        assert_eq!(MDC_EVT_ALARM.0, 196616);
        assert_eq!(MDC_EVT_HI.0, 196648);
        assert_eq!(MDC_EVT_LO.0, 196670);
        assert_eq!(MDC_EVT_LEAD_DISCONN.0, 196876);
        assert_eq!(MDC_EVT_WAVE_ARTIF_ERR.0, 197040);
        assert_eq!(ref_id(MdcCode(196648)), Some("MDC_EVT_HI"));
        assert_eq!(ref_id(MdcCode(196916)), None);
    }
}
