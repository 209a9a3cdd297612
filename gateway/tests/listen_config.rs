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
