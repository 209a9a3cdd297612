//! Who the node is: its EUI-64 and the per-boot id.
//!
//! The EUI-64 is derived from the MCU's factory unique id (96 bits on STM32, 64 on nRF52, ...)
//! so that every node has a stable identity without provisioning. Without an IEEE-assigned OUI
//! the id is a locally administered one (IEEE 802 "U/L" bit set, "I/G" bit clear, as RFC 7042
//! §2.1 describes for MAC addresses): 62 hashed bits, so two nodes collide with probability about
//! n²/2⁶³. A product with an OUI puts its OUI in the first three octets instead.
//!
//! The boot id only has to differ between boots of one node (the gateway restarts its sequence
//! tracking when it changes): it is hashed from whatever varies at boot, a hardware random
//! number generator where there is one, otherwise timer jitter and uninitialised RAM.

/// FNV-1a, 64-bit (Fowler–Noll–Vo; offset basis and prime from the authors' reference).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The node's EUI-64 from the MCU's unique id.
pub fn eui64_from_unique_id(unique_id: &[u8]) -> [u8; 8] {
    let mut e = fnv1a64(unique_id).to_be_bytes();
    // Locally administered (bit 1 of the first octet), unicast (bit 0 clear).
    e[0] = (e[0] | 0x02) & !0x01;
    e
}

/// SplitMix64 finaliser: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A boot id from entropy words gathered at boot.
pub fn boot_id(entropy: &[u32]) -> u32 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for &w in entropy {
        h = mix(h ^ u64::from(w));
    }
    (h >> 32) as u32 ^ h as u32
}

/// What the node says in its Hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub eui64: [u8; 8],
    pub model: &'static str,
    pub firmware: &'static str,
    pub boot_id: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_is_stable_local_and_unicast() {
        // FNV-1a-64 of "a" is 0xaf63dc4c8601ec8c (the FNV authors' test vector); the first octet
        // 0xaf becomes 0xae: U/L set (already), I/G cleared.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(eui64_from_unique_id(b"a"), [0xae, 0x63, 0xdc, 0x4c, 0x86, 0x01, 0xec, 0x8c]);
        let a = eui64_from_unique_id(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(a, eui64_from_unique_id(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
        assert_ne!(a, eui64_from_unique_id(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]));
        assert_eq!(a[0] & 0x03, 0x02);
    }

    #[test]
    fn boot_ids_differ_with_entropy() {
        assert_ne!(boot_id(&[1, 2, 3]), boot_id(&[1, 2, 4]));
        assert_eq!(boot_id(&[7]), boot_id(&[7]));
    }
}
