//! Who may connect to a listening source: CIDR allow rules, and the check that devices sharing
//! a listen address have disjoint allow lists (each connection must bind to one device).

use std::collections::{BTreeSet, HashMap};

use super::model::{DeviceConfig, SourceConfig};

/// An address or network allowed to connect to a TCP-server source: `10.1.2.3` or `10.1.2.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowRule {
    pub net: std::net::IpAddr,
    pub prefix: u8,
}

impl AllowRule {
    pub fn parse(s: &str) -> Option<AllowRule> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let net: std::net::IpAddr = addr.trim().parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(AllowRule { net, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// Whether some address is in both rules (CIDR blocks are nested or disjoint).
    pub fn overlaps(&self, other: &AllowRule) -> bool {
        (self.prefix <= other.prefix && self.contains(other.net)) || (other.prefix <= self.prefix && other.contains(self.net))
    }
}

/// Devices may share a listen address when their allow lists are disjoint: each connection is
/// bound to the device whose list contains the peer (`source/listen.rs`). Two listen addresses
/// on one port where one is a wildcard cannot both be bound.
///
/// Indexed, so that checking a device costs a few look-ups per allow rule however many devices
/// came before: CIDR blocks are nested or disjoint, so a new block overlaps an earlier one
/// exactly when an earlier block starts inside it, or an earlier block at one of the prefix
/// lengths in use contains its first address.
#[derive(Default)]
pub(super) struct ListenIndex {
    binds: HashMap<std::net::SocketAddr, BindRules>,
    ports: HashMap<u16, PortBinds>,
}

/// The allow blocks of the devices on one listen address, keyed by (IPv6?, first address).
#[derive(Default)]
struct BindRules {
    exact: HashMap<(bool, u128, u8), (usize, AllowRule)>,
    starts: std::collections::BTreeMap<(bool, u128), (usize, AllowRule)>,
    prefixes: BTreeSet<(bool, u8)>,
}

/// The listen addresses on one port: the first two distinct ones (one of them differs from any
/// new address) and the first wildcard.
#[derive(Default)]
struct PortBinds {
    distinct: Vec<(std::net::SocketAddr, usize)>,
    wildcard: Option<(std::net::SocketAddr, usize)>,
}

/// (IPv6?, first address, host mask) of an allow rule.
fn block(rule: &AllowRule) -> (bool, u128, u128) {
    let (v6, bits, width) = match rule.net {
        std::net::IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32u8),
        std::net::IpAddr::V6(a) => (true, u128::from(a), 128u8),
    };
    let host = host_mask(width - rule.prefix.min(width));
    (v6, bits & !host, host)
}

fn host_mask(host_bits: u8) -> u128 {
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

impl BindRules {
    fn overlapping(&self, rule: &AllowRule) -> Option<&(usize, AllowRule)> {
        let (v6, first, host) = block(rule);
        if let Some(e) = self.starts.range((v6, first)..=(v6, first | host)).next() {
            return Some(e.1);
        }
        let width = if v6 { 128 } else { 32 };
        self.prefixes.range((v6, 0)..=(v6, rule.prefix)).find_map(|&(_, q)| self.exact.get(&(v6, first & !host_mask(width - q), q)))
    }

    fn insert(&mut self, device: usize, rule: AllowRule) {
        let (v6, first, _) = block(&rule);
        self.exact.entry((v6, first, rule.prefix)).or_insert((device, rule));
        self.starts.entry((v6, first)).or_insert((device, rule));
        self.prefixes.insert((v6, rule.prefix));
    }
}

impl ListenIndex {
    /// Adds device `index` (`d`); returns (message, hint) if it conflicts with one in `earlier`.
    pub(super) fn add(&mut self, d: &DeviceConfig, index: usize, earlier: &[DeviceConfig]) -> Option<(String, String)> {
        let SourceConfig::TcpServer { bind, allow } = &d.source else { return None };
        let rules = self.binds.entry(*bind).or_default();
        let shared = allow.iter().find_map(|x| rules.overlapping(x).map(|(e, y)| (x, *e, *y)));
        for rule in allow {
            rules.insert(index, *rule);
        }
        let port = self.ports.entry(bind.port()).or_default();
        let wildcard = if bind.ip().is_unspecified() { port.distinct.iter().find(|(b, _)| b != bind).copied() } else { port.wildcard };
        if port.distinct.len() < 2 && !port.distinct.iter().any(|(b, _)| b == bind) {
            port.distinct.push((*bind, index));
        }
        if bind.ip().is_unspecified() && port.wildcard.is_none() {
            port.wildcard = Some((*bind, index));
        }
        if let Some((x, e, y)) = shared {
            return Some((
                format!(
                    "shares listen {bind} with device {:?}, and both allow lists admit {}/{} and {}/{}: a connection could not be bound to one device",
                    earlier[e].name, x.net, x.prefix, y.net, y.prefix
                ),
                "make the allow lists of devices on one listen address disjoint, or give each its own port".into(),
            ));
        }
        wildcard.map(|(b, e)| {
            (
                format!("listen {bind} overlaps device {:?}'s listen {b}", earlier[e].name),
                "use the same listen address (with disjoint allow lists) or another port".into(),
            )
        })
    }
}
