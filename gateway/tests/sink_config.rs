//! `[[sink]]` tables (issue 15): an MLLP destination beside `[mqtt]`, checked with every problem
//! at its line and key, TLS read as for `[mqtt.tls]`, and `check-config` warning that `run`
//! does not deliver to it yet.

use std::path::Path;

use medgw::config::{self, AckMode, ConfigError, SinkConfig};

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

fn with_sink(sink: &str) -> String {
    format!("{BASE}\n[[sink]]\n{sink}\n")
}

fn errors(text: &str) -> Vec<ConfigError> {
    config::parse(text, Path::new("/etc/medgw")).expect_err("the configuration should be refused")
}

fn find<'a>(errs: &'a [ConfigError], key: &str) -> &'a ConfigError {
    errs.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("no error for {key}: {errs:#?}"))
}

/// 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in the text")) + 1
}

#[test]
fn an_mllp_sink_with_defaults_and_every_key() {
    let c = config::parse(&with_sink("kind = \"mllp\"\nhost = \"engine.hospital.local\""), Path::new("/etc/medgw")).unwrap();
    let [SinkConfig::Mllp(s)] = &c.sinks[..] else { panic!("{:?}", c.sinks) };
    assert_eq!((s.name.as_str(), s.host.as_str(), s.port), ("mllp", "engine.hospital.local", 2575));
    assert_eq!((s.ack_mode, s.ack_timeout_s, s.max_in_flight, s.ae_retries), (AckMode::Original, 30, 1, 3));
    assert_eq!((s.retry_backoff_min_s, s.retry_backoff_max_s), (1, 60));
    assert_eq!(s.tls, None);
    // MQTT stays as it was.
    assert_eq!(c.mqtt.host, "127.0.0.1");

    let text = with_sink(
        "kind = \"mllp\"\nname = \"epic\"\nhost = \"10.1.2.3\"\nport = 6661\nformat = \"hl7v2\"\nack_mode = \"enhanced\"\nack_timeout_s = 15\nmax_in_flight = 4\nretry_backoff_min_s = 2\nretry_backoff_max_s = 120\nae_retries = 5",
    );
    let c = config::parse(&text, Path::new("/etc/medgw")).unwrap();
    let [SinkConfig::Mllp(s)] = &c.sinks[..] else { panic!("{:?}", c.sinks) };
    assert_eq!((s.name.as_str(), s.port, s.ack_mode, s.ack_timeout_s, s.max_in_flight), ("epic", 6661, AckMode::Enhanced, 15, 4));
    let d = s.delivery();
    assert_eq!(
        (d.ack_timeout_ms, d.max_in_flight, d.retry_backoff_min_ms, d.retry_backoff_max_ms, d.ae_retries),
        (15_000, 4, 2_000, 120_000, 5)
    );
    assert_eq!(d.ack_mode, AckMode::Enhanced);
}

#[test]
fn a_sink_is_delivered_to_so_no_warning_and_it_may_not_take_the_mqtt_name() {
    let text = with_sink("kind = \"mllp\"\nhost = \"engine\"");
    let c = config::parse(&text, Path::new("/etc/medgw")).unwrap();
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    let text = with_sink("kind = \"mllp\"\nname = \"mqtt\"\nhost = \"engine\"");
    let errs = config::parse(&text, Path::new("/etc/medgw")).unwrap_err();
    let e = find(&errs, "sink[0].name");
    assert_eq!(e.line, line_of(&text, "name = \"mqtt\""));
    assert!(e.message.contains("name of the [mqtt] sink"), "{e}");
}

#[test]
fn every_problem_of_a_sink_is_reported_at_its_key() {
    let text = with_sink(
        "kind = \"mllp\"\nport = 70000\nformat = \"fhir\"\nack_mode = \"fast\"\nack_timeout_s = 0\nmax_in_flight = 0\nretry_backoff_min_s = 90\nretry_backoff_max_s = 30\nae_retries = -1\nack_timout_s = 5",
    );
    let errs = errors(&text);
    let at = |key: &str| find(&errs, key).line;
    assert_eq!(find(&errs, "sink[0].host").message, "is required");
    assert_eq!(at("sink[0].port"), line_of(&text, "port = 70000"));
    let f = find(&errs, "sink[0].format");
    assert_eq!(f.line, line_of(&text, "format ="));
    assert!(f.hint.as_deref().unwrap().contains("hl7v2"), "{f}");
    assert_eq!(find(&errs, "sink[0].ack_mode").hint.as_deref(), Some("one of: original, enhanced"));
    assert_eq!(at("sink[0].ack_timeout_s"), line_of(&text, "ack_timeout_s = 0"));
    assert_eq!(at("sink[0].max_in_flight"), line_of(&text, "max_in_flight"));
    let b = find(&errs, "sink[0].retry_backoff_min_s");
    assert_eq!(b.line, line_of(&text, "retry_backoff_min_s"));
    assert!(b.message.contains("more than retry_backoff_max_s"), "{b}");
    assert_eq!(at("sink[0].ae_retries"), line_of(&text, "ae_retries"));
    let typo = find(&errs, "sink[0].ack_timout_s");
    assert_eq!(typo.hint.as_deref(), Some("did you mean `ack_timeout_s`?"));
}

#[test]
fn kinds_names_and_the_mqtt_table() {
    let errs = errors(&with_sink("kind = \"mqtt\"\nhost = \"broker\""));
    assert!(find(&errs, "sink[0].kind").message.contains("[mqtt]"), "{errs:#?}");
    let errs = errors(&with_sink("kind = \"amqp\"\nhost = \"x\""));
    assert_eq!(find(&errs, "sink[0].kind").hint.as_deref(), Some("one of: mllp"));
    let errs = errors(&with_sink("host = \"x\""));
    assert_eq!(find(&errs, "sink[0].kind").message, "is required");
    // Two sinks under one name could not be told apart in the buffer's delivery state.
    let text = format!("{BASE}\n[[sink]]\nkind = \"mllp\"\nhost = \"a\"\n\n[[sink]]\nkind = \"mllp\"\nhost = \"b\"\n");
    let errs = errors(&text);
    let e = find(&errs, "sink[1].name");
    assert!(e.message.contains("already used"), "{e}");
    let named = text.replace("host = \"b\"", "host = \"b\"\nname = \"second\"");
    assert_eq!(config::parse(&named, Path::new("/etc/medgw")).unwrap().sinks.len(), 2);
    let errs = errors(&format!("sink = \"mllp://engine\"\n{BASE}"));
    assert!(find(&errs, "sink").hint.as_deref().unwrap().contains("[[sink]]"));
}

#[test]
fn tls_is_read_as_for_mqtt_and_its_files_are_checked() {
    let text = format!(
        "{}\n[sink.tls]\nca = \"/nonexistent/engine-ca.pem\"\ncert = \"/nonexistent/gw.pem\"\n",
        with_sink("kind = \"mllp\"\nhost = \"engine\"")
    );
    let errs = errors(&text);
    let ca = find(&errs, "sink[0].tls.ca");
    assert_eq!((ca.line, ca.column), (line_of(&text, "ca = "), 6));
    assert_eq!(ca.message, "/nonexistent/engine-ca.pem does not exist");
    assert!(errs.iter().any(|e| e.key == "sink[0].tls.cert" && e.message == "is given without key"), "{errs:#?}");

    if std::process::Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED (the rest): openssl is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = medgw::pki::generate(dir.path(), "gw").unwrap();
    let tls = |ca: &Path, cert: &Path, key: &Path| {
        format!(
            "{}\n[sink.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            with_sink("kind = \"mllp\"\nhost = \"engine\""),
            ca.display(),
            cert.display(),
            key.display()
        )
    };
    let c = config::parse(&tls(&f.ca, &f.client_cert, &f.client_key), dir.path()).unwrap();
    let [SinkConfig::Mllp(s)] = &c.sinks[..] else { panic!() };
    let t = s.tls.as_ref().unwrap();
    assert_eq!((&t.ca, t.cert.as_ref(), t.key.as_ref()), (&f.ca, Some(&f.client_cert), Some(&f.client_key)));
    // A certificate given as the key: refused at `key`, as for [mqtt.tls].
    let text = tls(&f.ca, &f.client_cert, &f.client_cert);
    let errs = config::parse(&text, dir.path()).unwrap_err();
    let e = find(&errs, "sink[0].tls.key");
    assert_eq!(e.line, line_of(&text, "key = "));
    assert!(e.message.contains("holds a certificate, not a private key"), "{e}");
}

#[test]
fn check_config_accepts_a_sink_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("medgw.toml");
    let text = with_sink("kind = \"mllp\"\nhost = \"engine\"");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_medgw")).arg("check-config").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn the_commented_sink_of_the_example_configuration_is_valid() {
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/medgw.toml")).unwrap();
    let sink: Vec<&str> = example
        .lines()
        .skip_while(|l| *l != "# [[sink]]")
        .take_while(|l| *l != "# [sink.tls]")
        .map(|l| l.strip_prefix("# ").unwrap_or_else(|| panic!("{l:?} is not a commented line")))
        .collect();
    assert!(sink.len() > 5, "no commented [[sink]] in config/medgw.toml");
    let text = format!("{BASE}\n{}\n", sink.join("\n"));
    let c = config::parse(&text, Path::new("/etc/medgw")).unwrap_or_else(|e| panic!("{e:#?}"));
    let [SinkConfig::Mllp(s)] = &c.sinks[..] else { panic!("{:?}", c.sinks) };
    assert_eq!((s.name.as_str(), s.port, s.ack_mode), ("ehr", 2575, AckMode::Original));
}
