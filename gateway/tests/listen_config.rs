//! Device servers that connect to the gateway: which listen addresses devices may share.

use std::path::Path;

use medgw::config::{self, AllowRule, SourceConfig};

fn gateway(devices: &str) -> String {
    format!(
        r#"
[gateway]
id = "gw"
site = "H"
unit = "U"

[mqtt]
host = "127.0.0.1"

[buffer]
path = "buffer.db"
{devices}"#
    )
}

fn device(name: &str, listen: &str, allow: &str) -> String {
    format!("\n[[device]]\nname = \"{name}\"\nprotocol = \"masimo\"\nlisten = \"{listen}\"\nallow = {allow}\nbed = \"B\"\n")
}

#[test]
fn devices_may_share_a_listen_address_with_disjoint_allow_lists() {
    let text =
        gateway(&[device("a", "0.0.0.0:4001", r#"["10.1.2.3"]"#), device("b", "0.0.0.0:4001", r#"["10.1.2.4", "10.1.3.0/24"]"#)].concat());
    let c = config::parse(&text, Path::new("/etc/medgw")).unwrap();
    assert!(matches!(c.devices[1].source, SourceConfig::TcpServer { .. }));
}

#[test]
fn overlapping_allow_lists_on_one_listen_address_are_refused() {
    let text =
        gateway(&[device("a", "0.0.0.0:4001", r#"["10.1.2.0/24"]"#), device("b", "0.0.0.0:4001", r#"["10.9.9.9", "10.1.2.77"]"#)].concat());
    let errs = config::parse(&text, Path::new("/etc/medgw")).unwrap_err();
    let e = errs.iter().find(|e| e.key == "device[1].listen").unwrap_or_else(|| panic!("{errs:#?}"));
    assert!(e.message.contains("10.1.2.77/32") && e.message.contains("10.1.2.0/24"), "{}", e.message);
    assert!(e.line > 0);
    // A wildcard and a specific address on the same port cannot both be bound.
    let text = gateway(&[device("a", "0.0.0.0:4001", r#"["10.1.2.3"]"#), device("b", "127.0.0.1:4001", r#"["127.0.0.1"]"#)].concat());
    let errs = config::parse(&text, Path::new("/etc/medgw")).unwrap_err();
    assert!(errs.iter().any(|e| e.key == "device[1].listen" && e.message.contains("overlaps")), "{errs:#?}");
    // Other ports and distinct specific addresses are fine.
    let text = gateway(
        &[
            device("a", "127.0.0.1:4001", r#"["127.0.0.1"]"#),
            device("b", "127.0.0.2:4001", r#"["127.0.0.1"]"#),
            device("c", "0.0.0.0:4002", r#"["127.0.0.1"]"#),
        ]
        .concat(),
    );
    config::parse(&text, Path::new("/etc/medgw")).unwrap();
}

#[test]
fn cidr_overlap() {
    let r = |s: &str| AllowRule::parse(s).unwrap();
    assert!(r("10.1.0.0/16").overlaps(&r("10.1.2.3")));
    assert!(r("10.1.2.3").overlaps(&r("10.1.0.0/16")));
    assert!(!r("10.1.0.0/16").overlaps(&r("10.2.0.0/16")));
    assert!(r("0.0.0.0/0").overlaps(&r("192.168.1.1")));
    assert!(!r("10.1.2.3").overlaps(&r("fd00::1")));
    assert!(r("fd00::/8").overlaps(&r("fd12::1")));
}

/// A small deterministic generator (no rand dependency for one test).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The indexed overlap check agrees with the pairwise definition (`AllowRule::overlaps`
/// between every earlier device on the same listen address) on nested, equal and disjoint
/// IPv4 and IPv6 blocks of many prefix lengths, in every order.
#[test]
fn indexed_listen_checks_agree_with_the_pairwise_definition() {
    let mut rng = Lcg(7);
    let binds = ["0.0.0.0:4001", "10.0.0.1:4002", "[::]:4003"];
    let mut devices = Vec::new();
    for i in 0..400 {
        let bind = binds[rng.next(3) as usize];
        let rules: Vec<String> = (0..1 + rng.next(3))
            .map(|_| {
                if rng.next(4) == 0 {
                    let prefix = [48, 64, 100, 120, 127, 128][rng.next(6) as usize];
                    format!("fd00:{:x}:{:x}::{:x}/{prefix}", rng.next(4), rng.next(16), rng.next(512))
                } else {
                    // Mostly hosts and small networks, so that many lists are disjoint, and now
                    // and then a wide one.
                    let prefix =
                        if rng.next(30) == 0 { [8, 12, 16, 20][rng.next(4) as usize] } else { [24, 28, 30, 31, 32][rng.next(5) as usize] };
                    format!("10.{}.{}.{}/{prefix}", rng.next(4), rng.next(32), rng.next(256))
                }
            })
            .collect();
        devices.push((format!("d{i}"), bind, rules));
    }
    let text = gateway(
        &devices
            .iter()
            .map(|(name, bind, rules)| {
                device(name, bind, &format!("[{}]", rules.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ")))
            })
            .collect::<String>(),
    );
    let parse_rules = |rules: &[String]| rules.iter().map(|r| AllowRule::parse(r).unwrap()).collect::<Vec<_>>();
    let expected: Vec<usize> = (0..devices.len())
        .filter(|&i| {
            let mine = parse_rules(&devices[i].2);
            devices[..i]
                .iter()
                .any(|(_, bind, rules)| *bind == devices[i].1 && parse_rules(rules).iter().any(|y| mine.iter().any(|x| x.overlaps(y))))
        })
        .collect();
    let got: Vec<usize> = match config::parse(&text, Path::new("/etc/medgw")) {
        Ok(_) => Vec::new(),
        Err(errs) => errs
            .iter()
            .map(|e| {
                assert!(e.message.contains("both allow lists admit"), "{e}");
                e.key.strip_prefix("device[").unwrap().strip_suffix("].listen").unwrap().parse().unwrap()
            })
            .collect(),
    };
    assert!(expected.len() > 20 && expected.len() < devices.len() - 20, "the sample has both outcomes: {}", expected.len());
    assert_eq!(got, expected);
}

/// The example of a large site: many device servers connecting to one listen address, each
/// allowed by its own address. The overlap found last names the device it collides with.
#[test]
fn thousands_of_devices_on_one_listen_address() {
    let mut devices: String =
        (0..5000).map(|i| device(&format!("d{i}"), "0.0.0.0:4001", &format!("[\"10.1.{}.{}\"]", i / 256, i % 256))).collect();
    config::parse(&gateway(&devices), Path::new("/etc/medgw")).unwrap();
    devices.push_str(&device("late", "0.0.0.0:4001", "[\"10.1.19.0/24\"]"));
    let errs = config::parse(&gateway(&devices), Path::new("/etc/medgw")).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "device[5000].listen");
    assert!(errs[0].message.contains("\"d4864\"") && errs[0].message.contains("10.1.19.0/24"), "{}", errs[0].message);
}

/// A configuration of `n` devices: serial, tcp://, rfc2217:// and listen devices (sharing 16
/// listen addresses with disjoint allow lists).
fn big_config(n: usize) -> String {
    let mut s = gateway("");
    for i in 0..n {
        let (a, b, c) = (i >> 16 & 255, i >> 8 & 255, i & 255);
        let source = match i % 4 {
            0 => format!("protocol = \"nonin-df8\"\nport = \"/dev/serial/by-id/dev-{i}\""),
            1 => format!("protocol = \"nonin-df8\"\nport = \"tcp://10.{a}.{b}.{c}:4001\""),
            2 => format!("protocol = \"medibus\"\nport = \"rfc2217://moxa-{i}.local:4001\""),
            _ => format!("protocol = \"masimo\"\nlisten = \"0.0.0.0:{}\"\nallow = [\"10.{a}.{b}.{c}\"]", 4000 + i % 16),
        };
        s.push_str(&format!("\n[[device]]\nname = \"dev-{i}\"\n{source}\nbed = \"B{i}\"\n"));
    }
    s
}

/// 200,000 devices: seconds when the checks are linear, hours when they compare every pair.
/// Ignored by default (it is a load test); `cargo bench -p medgw --bench config_check` has the
/// figures.
#[test]
#[ignore]
fn two_hundred_thousand_devices_check_in_linear_time() {
    let mut text = big_config(200_000);
    let c = config::parse(&text, Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.devices.len(), 200_000);
    text.push_str("\n[[device]]\nname = \"dev-7\"\nprotocol = \"nonin-df8\"\nport = \"/dev/serial/by-id/dev-0\"\nbed = \"B\"\n");
    let errs = config::parse(&text, Path::new("/etc/medgw")).unwrap_err();
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["device[200000].name", "device[200000].port"]);
}
