//! Which ADT locations are this gateway's beds.
//!
//! The mapping is one-to-one and exact, as the ADT feed spells the location: point of care,
//! room and bed compared as written (an empty configured component matches only an empty one),
//! the facility compared when configured. Two mappings that could match the same location, or
//! two locations for one gateway bed, are configuration errors: an ambiguous mapping is a
//! wrong-patient risk, so it is refused at start-up rather than resolved by order.

use alloc::string::String;
use alloc::vec::Vec;

use crate::hl7::Pl;

/// One configured bed: the gateway's name and the ADT location it answers to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BedMapping {
    /// The gateway's bed name (the `bed` of a device in the configuration).
    pub gateway_bed: String,
    /// PL-4 facility (namespace or universal id); `None` matches any facility.
    #[serde(default)]
    pub facility: Option<String>,
    /// PL-1.
    #[serde(default)]
    pub point_of_care: String,
    /// PL-2.
    #[serde(default)]
    pub room: String,
    /// PL-3.
    #[serde(default)]
    pub bed: String,
}

impl BedMapping {
    fn matches(&self, pl: &Pl) -> bool {
        self.point_of_care == pl.point_of_care
            && self.room == pl.room
            && self.bed == pl.bed
            && self.facility.as_deref().is_none_or(|f| f == pl.facility.namespace || f == pl.facility.universal_id)
    }

    fn overlaps(&self, other: &BedMapping) -> bool {
        self.point_of_care == other.point_of_care
            && self.room == other.room
            && self.bed == other.bed
            && match (&self.facility, &other.facility) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// Why a bed map was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BedMapError {
    #[error("gateway bed {0:?} is mapped twice")]
    DuplicateBed(String),
    #[error("beds {0:?} and {1:?} map the same ADT location")]
    OverlappingLocation(String, String),
    #[error("bed {0:?} maps an empty ADT location")]
    EmptyLocation(String),
}

/// The checked mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BedMap {
    mappings: Vec<BedMapping>,
}

impl BedMap {
    pub fn new(mappings: Vec<BedMapping>) -> Result<BedMap, BedMapError> {
        for (i, m) in mappings.iter().enumerate() {
            if m.point_of_care.is_empty() && m.room.is_empty() && m.bed.is_empty() {
                return Err(BedMapError::EmptyLocation(m.gateway_bed.clone()));
            }
            for other in &mappings[i + 1..] {
                if other.gateway_bed == m.gateway_bed {
                    return Err(BedMapError::DuplicateBed(m.gateway_bed.clone()));
                }
                if m.overlaps(other) {
                    return Err(BedMapError::OverlappingLocation(m.gateway_bed.clone(), other.gateway_bed.clone()));
                }
            }
        }
        Ok(BedMap { mappings })
    }

    /// The gateway bed for an ADT location, if it is one of ours.
    pub fn lookup(&self, pl: &Pl) -> Option<&str> {
        self.mappings.iter().find(|m| m.matches(pl)).map(|m| m.gateway_bed.as_str())
    }

    pub fn mappings(&self) -> &[BedMapping] {
        &self.mappings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7::Hd;

    fn map(bed: &str, fac: Option<&str>, poc: &str, room: &str, b: &str) -> BedMapping {
        BedMapping { gateway_bed: bed.into(), facility: fac.map(Into::into), point_of_care: poc.into(), room: room.into(), bed: b.into() }
    }

    fn pl(fac: &str, poc: &str, room: &str, bed: &str) -> Pl {
        Pl {
            point_of_care: poc.into(),
            room: room.into(),
            bed: bed.into(),
            facility: Hd { namespace: fac.into(), ..Hd::default() },
            ..Pl::default()
        }
    }

    #[test]
    fn matches_exactly_as_spelled() {
        let m = BedMap::new(alloc::vec![map("icu-3b", Some("STMARY"), "ICU", "03", "B"), map("icu-4a", None, "ICU", "04", "A")]).unwrap();
        assert_eq!(m.lookup(&pl("STMARY", "ICU", "03", "B")), Some("icu-3b"));
        assert_eq!(m.lookup(&pl("OTHER", "ICU", "03", "B")), None);
        assert_eq!(m.lookup(&pl("ANY", "ICU", "04", "A")), Some("icu-4a"));
        assert_eq!(m.lookup(&pl("STMARY", "ICU", "3", "B")), None);
        assert_eq!(m.lookup(&pl("STMARY", "icu", "03", "B")), None);
        assert_eq!(m.lookup(&pl("STMARY", "ICU", "03", "")), None);
    }

    #[test]
    fn refuses_ambiguous_maps() {
        assert_eq!(
            BedMap::new(alloc::vec![map("a", Some("H"), "ICU", "1", "A"), map("b", None, "ICU", "1", "A")]),
            Err(BedMapError::OverlappingLocation("a".into(), "b".into()))
        );
        assert_eq!(
            BedMap::new(alloc::vec![map("a", None, "ICU", "1", "A"), map("a", None, "ICU", "1", "B")]),
            Err(BedMapError::DuplicateBed("a".into()))
        );
        assert_eq!(BedMap::new(alloc::vec![map("a", Some("H"), "", "", "")]), Err(BedMapError::EmptyLocation("a".into())));
        assert!(BedMap::new(alloc::vec![map("a", Some("H1"), "ICU", "1", "A"), map("b", Some("H2"), "ICU", "1", "A")]).is_ok());
    }
}
