//! The protocol registry: every decoder medgw has, by the name used in configuration and in
//! `medgw decode --protocol`.

use crate::decode::ProtocolInfo;

/// All protocols, in the order `medgw decode --list` prints them.
pub fn protocols() -> impl Iterator<Item = &'static ProtocolInfo> {
    let tables: [&'static [ProtocolInfo]; 6] = [
        crate::wire::nonin::PROTOCOLS,
        crate::wire::masimo::PROTOCOLS,
        crate::wire::intellivue::PROTOCOLS,
        crate::wire::medibus::PROTOCOLS,
        crate::wire::link::PROTOCOLS,
        crate::wire::gatt::PROTOCOLS,
    ];
    tables.into_iter().flatten()
}

/// The protocol called `name`.
pub fn find(name: &str) -> Option<&'static ProtocolInfo> {
    protocols().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeSet;

    /// A configuration compares protocols by name (`ProtocolInfo: PartialEq`) and finds them
    /// by name: two rows with one name would be one protocol to both.
    #[test]
    fn names_are_unique_and_found() {
        let mut seen = BTreeSet::new();
        for p in super::protocols() {
            assert!(seen.insert(p.name), "{} twice", p.name);
            assert_eq!(super::find(p.name), Some(p));
        }
    }
}
