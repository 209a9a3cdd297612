//! `carries` of a `[[sink]]` (issue 16): an MLLP sink delivers observations (the default), alarm
//! events as PCD-04 to an Alarm Manager, or both; a bad list is refused at its line and key.

use std::path::Path;

use medgw::config::{self, Carries, ConfigError, SinkConfig};

const BASE: &str = r#"
[gateway]
id = "gw-icu-3"
site = "HOSP"
unit = "ICU"

[mqtt]
host = "127.0.0.1"

[buffer]
path = "buffer.db"
"#;

fn sink(extra: &str) -> String {
    format!("{BASE}\n[[sink]]\nkind = \"mllp\"\nhost = \"am.hospital.local\"\n{extra}\n")
}

fn carries(extra: &str) -> Carries {
    let c = config::parse(&sink(extra), Path::new("/etc/medgw")).unwrap_or_else(|e| panic!("{e:#?}"));
    let [SinkConfig::Mllp(s)] = &c.sinks[..] else { panic!("{:?}", c.sinks) };
    s.carries
}

fn error(extra: &str) -> (ConfigError, usize) {
    let text = sink(extra);
    let errs = config::parse(&text, Path::new("/etc/medgw")).expect_err("refused");
    let e = errs.iter().find(|e| e.key == "sink[0].carries").unwrap_or_else(|| panic!("{errs:#?}")).clone();
    let line = text.lines().position(|l| l.starts_with("carries")).unwrap() + 1;
    (e, line)
}

#[test]
fn a_sink_carries_observations_by_default_alarms_or_both() {
    assert_eq!(carries(""), Carries { observations: true, alarms: false });
    assert_eq!(carries("carries = [\"alarms\"]"), Carries { observations: false, alarms: true });
    assert_eq!(carries("carries = [\"alarms\", \"observations\"]"), Carries { observations: true, alarms: true });
    assert_eq!(carries("carries = [\"observations\"]"), Carries { observations: true, alarms: false });
}

#[test]
fn a_bad_carries_list_is_refused_at_its_line_with_a_hint() {
    for (extra, says) in [
        ("carries = \"alarms\"", "must be a list"),
        ("carries = []", "at least one"),
        ("carries = [\"alarm\"]", "unknown kind of message \"alarm\""),
        ("carries = [\"alarms\", \"alarms\"]", "listed twice"),
        ("carries = [1]", "must list strings"),
    ] {
        let (e, line) = error(extra);
        assert!(e.message.contains(says), "{extra}: {e}");
        assert_eq!(e.line, line, "{extra}: {e}");
        assert!(e.hint.as_deref().is_some_and(|h| h.contains("observations") || h.contains("alarms")), "{extra}: {e:?}");
    }
}

#[test]
fn the_commented_alarm_manager_of_the_example_configuration_is_valid() {
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/medgw.toml")).unwrap();
    let block: Vec<&str> = example
        .lines()
        .skip_while(|l| !l.starts_with("# An Alarm Manager"))
        .skip_while(|l| *l != "# [[sink]]")
        .take_while(|l| !l.is_empty())
        .map(|l| l.strip_prefix("# ").unwrap_or_else(|| panic!("{l:?} is not a commented line")))
        .collect();
    assert!(block.len() > 4, "no commented Alarm Manager in config/medgw.toml");
    let c = config::parse(&format!("{BASE}\n{}\n", block.join("\n")), Path::new("/etc/medgw")).unwrap_or_else(|e| panic!("{e:#?}"));
    let [SinkConfig::Mllp(s)] = &c.sinks[..] else { panic!("{:?}", c.sinks) };
    assert_eq!((s.name.as_str(), s.carries), ("alarm-manager", Carries { observations: false, alarms: true }));
}
