//! Configuration checking: every problem reported with its line and a hint, and the example
//! configuration in `config/` is valid.

use std::path::Path;

use medgw::config::{self, ConfigError, PayloadFormat, Replay, SourceConfig, WhenFull};
use medgw_protocols::wire::gatt::GattKind;

const GOOD: &str = r#"
[gateway]
id = "gw-icu-3"
site = "HOSP"
unit = "ICU"
timezone = "Europe/Berlin"

[mqtt]
host = "127.0.0.1"
format = "canonical"

[buffer]
path = "buffer.db"
max_bytes = "512MB"
when_full = "stop-reading"
replay = "ordered"

[[device]]
name = "bed1-oximeter"
protocol = "nonin-df8"
port = "/dev/ttyUSB0"
bed = "BED1"
patient = { id = "MRN1", system = "urn:oid:1.2.3" }

[[device]]
name = "bed2-vent"
protocol = "medibus"
port = "/dev/ttyUSB1"
bed = "BED2"
poll_period_ms = 2000
"#;

fn errors(text: &str) -> Vec<ConfigError> {
    config::parse(text, Path::new("/etc/medgw")).expect_err("the configuration should be refused")
}

fn find<'a>(errs: &'a [ConfigError], key: &str) -> &'a ConfigError {
    errs.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("no error for {key}: {errs:#?}"))
}

#[test]
fn a_good_file_parses_with_protocol_defaults() {
    let c = config::parse(GOOD, Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.gateway.id, "gw-icu-3");
    assert_eq!(c.mqtt.port, 1883);
    assert_eq!(c.mqtt.client_id, "medgw-gw-icu-3");
    assert_eq!(c.mqtt.format, PayloadFormat::Canonical);
    assert_eq!(c.buffer.path, Path::new("/etc/medgw/buffer.db"));
    assert_eq!(c.buffer.max_bytes, 512_000_000);
    assert_eq!(c.buffer.when_full, WhenFull::StopReading);
    assert_eq!(c.buffer.replay, Replay::Ordered);
    assert_eq!(c.devices.len(), 2);
    let config::SourceConfig::Serial { settings, .. } = &c.devices[0].source else { panic!("serial") };
    assert_eq!(
        (settings.baud, settings.data_bits, settings.parity, settings.stop_bits),
        (9600, 8, config::Parity::None, 1),
        "Nonin defaults"
    );
    let config::SourceConfig::Serial { settings, .. } = &c.devices[1].source else { panic!("serial") };
    assert_eq!((settings.baud, settings.parity), (19200, config::Parity::Even), "MEDIBUS defaults");
    assert_eq!(c.devices[0].patient.as_ref().unwrap().id, "MRN1");
    assert_eq!(c.devices[1].poll_period_ms, 2000);
}

#[test]
fn every_problem_is_reported_with_its_line_and_a_hint() {
    let text = GOOD
        .replace("id = \"gw-icu-3\"", "id = \"gw icu/3\"")
        .replace("timezone = \"Europe/Berlin\"", "timezone = \"Europe/Berlinn\"")
        .replace("format = \"canonical\"", "format = \"xml\"\nqos = 0\nport = 70000")
        .replace("max_bytes = \"512MB\"", "max_bytes = \"lots\"")
        .replace("protocol = \"nonin-df8\"", "protocol = \"nonin-dff8\"\nbaudrate = 9600")
        .replace("name = \"bed2-vent\"", "name = \"bed1-oximeter\"");
    let errs = errors(&text);
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let e = find(&errs, "gateway.id");
    assert_eq!(e.line, line_of("gw icu/3"));
    assert!(e.hint.as_deref().unwrap().contains("letters, digits"), "{e}");
    assert_eq!(find(&errs, "gateway.timezone").line, line_of("Berlinn"));
    let e = find(&errs, "mqtt.format");
    assert_eq!(e.line, line_of("\"xml\""));
    assert!(e.hint.as_deref().unwrap().contains("fhir, hl7v2, canonical"), "{e}");
    assert!(find(&errs, "mqtt.qos").hint.as_deref().unwrap().contains("qos = 1"));
    assert!(find(&errs, "mqtt.port").message.contains("70000"));
    assert_eq!(find(&errs, "buffer.max_bytes").line, line_of("\"lots\""));
    let e = find(&errs, "device[0].protocol");
    assert_eq!(e.line, line_of("nonin-dff8"));
    assert!(e.hint.as_deref().unwrap().contains("nonin-df8"), "did-you-mean hint: {e}");
    let e = find(&errs, "device[0].baudrate");
    assert_eq!(e.line, line_of("baudrate"));
    assert!(e.hint.as_deref().unwrap().contains("baud"), "{e}");
    let e = find(&errs, "device[1].name");
    assert!(e.message.contains("already used"), "{e}");
    assert_eq!(errs.len(), 9, "exactly the nine problems put in: {errs:#?}");
}

#[test]
fn missing_sections_and_keys_have_hints() {
    let errs = errors("[gateway]\nid = \"x\"\n");
    for key in ["gateway.site", "gateway.unit", "mqtt", "buffer"] {
        assert!(find(&errs, key).hint.is_some(), "{key}");
    }
    let errs = errors(&GOOD.replace("bed = \"BED1\"\n", ""));
    assert!(find(&errs, "device[0].bed").message.contains("required"));
}

#[test]
fn syntax_errors_are_located() {
    let errs = errors("[gateway]\nid = \"x\nsite = 3\n");
    assert!(errs[0].message.starts_with("TOML syntax"), "{errs:#?}");
    assert_eq!(errs[0].line, 2);
}

#[test]
fn secrets_come_from_files_or_the_environment_and_are_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let text = GOOD.replace("host = \"127.0.0.1\"", "host = \"127.0.0.1\"\nusername = \"gw\"\npassword_file = \"pw\"");
    let c = config::parse(&text, dir.path()).unwrap();
    assert_eq!(c.mqtt.password.as_ref().unwrap().expose(), "s3cret");
    assert!(!format!("{c:?}").contains("s3cret"), "Debug must not show the password");
    let errs =
        errors(&GOOD.replace("host = \"127.0.0.1\"", "host = \"127.0.0.1\"\nusername = \"gw\"\npassword_env = \"MEDGW_TEST_NO_SUCH_VAR\""));
    assert!(find(&errs, "mqtt.password_env").message.contains("MEDGW_TEST_NO_SUCH_VAR"));
    let errs = errors(&GOOD.replace("host = \"127.0.0.1\"", "host = \"127.0.0.1\"\n[mqtt.tls]\nca = \"/nonexistent/ca.pem\""));
    assert!(find(&errs, "mqtt.tls.ca").message.contains("does not exist"));
}

#[test]
fn the_example_configuration_is_valid_apart_from_machine_specific_paths() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/medgw.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // The example names TLS files under /etc/medgw that a test machine does not have.
    let errs = config::parse(&text, path.parent().unwrap()).err().unwrap_or_default();
    assert!(errs.iter().all(|e| e.key.starts_with("mqtt.tls.")), "{errs:#?}");
    let without_tls: String = text.split("[mqtt.tls]").next().unwrap().to_string() + "[buffer]" + text.split("[buffer]").nth(1).unwrap();
    let c = config::parse(&without_tls, path.parent().unwrap()).unwrap();
    assert_eq!(c.devices.len(), 3);
}

/// The example file with every commented-out device and device key switched on (all kinds of
/// source), without the TLS files it names under /etc/medgw.
fn example_with_every_device() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/medgw.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let text: String = text.split("[mqtt.tls]").next().unwrap().to_string() + "[buffer]" + text.split("[buffer]").nth(1).unwrap();
    let first_device = text.find("\n[[device]]").unwrap();
    let (head, devices) = text.split_at(first_device);
    let devices: Vec<&str> = devices
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest == "[[device]]"
                    || rest.split_once(" = ").is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_')) =>
            {
                rest
            }
            _ => l,
        })
        .collect();
    format!("{head}{}\n", devices.join("\n"))
}

/// A file that passes `check-config` starts: the protocol, the GATT services and the zones are
/// resolved when the file is read, so building a device's runner has nothing left to look up
/// (`DeviceRunner::new` returns no error). Every device of the example file, of every source
/// kind, gets its runner with what its entry says.
#[tokio::test]
async fn every_example_device_builds_its_runner() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config::parse(&example_with_every_device(), dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    let kinds: Vec<&str> = c
        .devices
        .iter()
        .map(|d| match d.source {
            SourceConfig::Serial { .. } => "serial",
            SourceConfig::TcpClient { .. } => "tcp",
            SourceConfig::Rfc2217 { .. } => "rfc2217",
            SourceConfig::TcpServer { .. } => "listen",
            SourceConfig::Ble { .. } => "ble",
        })
        .collect();
    assert_eq!(kinds, ["serial", "serial", "serial", "ble", "tcp", "rfc2217", "listen"]);
    let ble = &c.devices[3];
    assert_eq!(
        (ble.protocol.name(), &ble.source),
        ("ble", &SourceConfig::Ble { address: Some("C0:26:DA:01:02:03".into()), name: None, services: vec![GattKind::Glucose] })
    );
    c.buffer.path = dir.path().join("buffer.db");
    let (buffer, _) = medgw::buffer::open(&c.buffer).await.unwrap();
    let (aux, _aux_rx) = tokio::sync::mpsc::channel(16);
    let link = medgw::source::PipelineLink {
        buffer: buffer.clone(),
        live: Default::default(),
        aux,
        topics: medgw::sink::topics::Topics::new(&c.mqtt.topic_prefix, &c.gateway.id),
        waves: None,
        when_full: c.buffer.when_full,
        shutdown: Default::default(),
        alarm_sinks: Default::default(),
    };
    let nomenclature = std::sync::Arc::new(medgw_protocols::nomenclature::Nomenclature::builtin());
    for d in &c.devices {
        let runner = medgw::source::DeviceRunner::new(&c, d, nomenclature.clone(), link.clone());
        assert_eq!((runner.status.name.as_str(), runner.status.protocol.as_str()), (d.name.as_str(), d.protocol.name()));
        assert_eq!(runner.status.port, d.source.port_name());
    }
    drop(link);
    buffer.close().await;
}

/// A device's zone is decided in one place, for the normaliser and Bluetooth Current Time
/// alike: its own, else the gateway's, else the system's.
#[test]
fn the_device_zone_is_its_own_else_the_gateways_else_the_systems() {
    let zone = |name: &str| jiff::tz::TimeZone::get(name).unwrap();
    let text = GOOD.replace("poll_period_ms = 2000", "poll_period_ms = 2000\ntimezone = \"America/New_York\"");
    let c = config::parse(&text, Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.device_zone(&c.devices[0]), zone("Europe/Berlin"));
    assert_eq!(c.device_zone(&c.devices[1]), zone("America/New_York"));
    let c = config::parse(&GOOD.replace("timezone = \"Europe/Berlin\"\n", ""), Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.device_zone(&c.devices[0]), jiff::tz::TimeZone::system());
}

#[test]
fn the_check_config_command_prints_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, GOOD.replace("protocol = \"nonin-df8\"", "protocol = \"nonin\"").replace("host = \"127.0.0.1\"", "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_medgw")).arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("device[0].protocol: unknown protocol \"nonin\""), "{err}");
    assert!(err.contains("mqtt.host: is required"), "{err}");
    assert!(err.contains("2 problem(s) found"), "{err}");
    // `run` refuses the same file with the same messages.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_medgw")).args(["run", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("device[0].protocol: unknown protocol"));
}

#[test]
fn network_and_bluetooth_sources() {
    let text = GOOD
        .replace("port = \"/dev/ttyUSB0\"", "port = \"tcp://10.1.2.3:4001\"")
        .replace("port = \"/dev/ttyUSB1\"", "port = \"rfc2217://moxa-icu.local:4002\"")
        + r#"
[[device]]
name = "bed3-oximeter"
protocol = "masimo"
listen = "0.0.0.0:4003"
allow = ["10.1.2.4", "10.1.3.0/24"]
bed = "BED3"

[[device]]
name = "bed4-cuff"
ble = "AA:BB:CC:DD:EE:FF"
services = ["blood-pressure"]
bed = "BED4"
"#;
    let c = config::parse(&text, Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.devices[0].source, config::SourceConfig::TcpClient { host: "10.1.2.3".into(), port: 4001 });
    let config::SourceConfig::Rfc2217 { host, port, settings } = &c.devices[1].source else { panic!("{:?}", c.devices[1].source) };
    assert_eq!(
        (host.as_str(), *port, settings.baud, settings.parity),
        ("moxa-icu.local", 4002, 19200, config::Parity::Even),
        "RFC 2217 keeps the protocol's serial defaults"
    );
    let config::SourceConfig::TcpServer { bind, allow } = &c.devices[2].source else { panic!() };
    assert_eq!(bind.port(), 4003);
    assert!(allow[0].contains("10.1.2.4".parse().unwrap()));
    assert!(!allow[0].contains("10.1.2.5".parse().unwrap()));
    assert!(allow[1].contains("10.1.3.77".parse().unwrap()));
    assert!(allow[1].contains("::ffff:10.1.3.77".parse().unwrap()), "IPv4-mapped peers on a dual-stack socket");
    assert!(!allow[1].contains("10.1.4.1".parse().unwrap()));
    assert_eq!(
        c.devices[3].source,
        config::SourceConfig::Ble { address: Some("AA:BB:CC:DD:EE:FF".into()), name: None, services: vec![GattKind::BloodPressure] }
    );
    assert_eq!(c.devices[3].protocol, "ble");
}

#[test]
fn source_problems_are_reported() {
    let two = GOOD.replace("port = \"/dev/ttyUSB0\"", "port = \"/dev/ttyUSB0\"\nlisten = \"0.0.0.0:4001\"");
    let e = find(&errors(&two), "device[0].port").clone();
    assert!(e.message.contains("more than one source"));
    assert_eq!((e.line, e.column), (place(&two, "listen = ").0, 1), "at the second source");
    let none = GOOD.replace("port = \"/dev/ttyUSB0\"\n", "");
    assert!(find(&errors(&none), "device[0].port").message.contains("no source"));
    let bad_url = GOOD.replace("port = \"/dev/ttyUSB0\"", "port = \"tcp://10.1.2.3\"");
    assert!(find(&errors(&bad_url), "device[0].port").hint.as_deref().unwrap().contains("tcp://10.1.2.3:4001"));
    let no_allow = GOOD.replace("port = \"/dev/ttyUSB0\"", "listen = \"0.0.0.0:4001\"");
    let e = find(&errors(&no_allow), "device[0].allow").clone();
    assert!(e.message.contains("required"));
    assert_eq!((e.line, e.column), place(&no_allow, "listen = "), "at the listen it belongs to");
    let bad_ble = GOOD.replace("protocol = \"nonin-df8\"\nport = \"/dev/ttyUSB0\"", "ble = \"AA:BB:CC\"\nservices = [\"heartbeat\"]");
    let errs = errors(&bad_ble);
    assert!(find(&errs, "device[0].ble").message.contains("not a Bluetooth address"));
    assert!(find(&errs, "device[0].services").hint.as_deref().unwrap().contains("heart-rate"));
    let gatt_on_serial = GOOD.replace("protocol = \"nonin-df8\"", "protocol = \"gatt-heart-rate\"");
    assert!(find(&errors(&gatt_on_serial), "device[0].protocol").message.contains("Bluetooth GATT"));
}

#[test]
fn the_gateway_eui64_is_optional_checked_and_distinct_from_the_derived_device_ids() {
    // Not configured: PCD-01 output derives it from the gateway id.
    assert_eq!(config::parse(GOOD, Path::new("/etc/medgw")).unwrap().gateway.eui64, None);
    let with = |eui: &str| GOOD.replace("timezone = \"Europe/Berlin\"", &format!("timezone = \"Europe/Berlin\"\neui64 = \"{eui}\""));
    let c = config::parse(&with("00-12-34-56-78-AB-CD-EF"), Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.gateway.eui64.unwrap().to_string(), "0012345678ABCDEF");
    let errs = errors(&with("0012345678ABCDEZ"));
    assert!(find(&errs, "gateway.eui64").message.contains("not an EUI-64"), "{errs:#?}");
    // The EUI-64 that bed1-oximeter derives (cfg:gw-icu-3:bed1-oximeter, computed with Python):
    // two pieces of equipment with one id would make the receiver merge their data.
    let errs = errors(&with("CA045A2769F6CB29"));
    let e = find(&errs, "device.name");
    assert!(e.message.contains("bed1-oximeter") && e.message.contains("the gateway"), "{e:?}");
}

/// 1-based line of the first line containing `needle`, and the column of its first `"` (where
/// a string value starts).
fn place(text: &str, needle: &str) -> (usize, usize) {
    let i = text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in the text"));
    let line = text.lines().nth(i).unwrap();
    (i + 1, line.find('"').map(|c| c + 1).unwrap_or(1))
}

/// Writes `text` to FILE and returns the `check-config`-style report of `config::load`.
fn report(dir: &Path, text: &str) -> (String, String) {
    let file = dir.join("medgw.toml");
    std::fs::write(&file, text).unwrap();
    let e = config::load(&file).expect_err("the configuration should be refused");
    (file.display().to_string(), e.to_string())
}

#[test]
fn problems_print_as_file_line_column_key_message_hint() {
    let dir = tempfile::tempdir().unwrap();
    // A bad value: at the value.
    let text = GOOD.replace("format = \"canonical\"", "format = \"xml\"");
    let (file, out) = report(dir.path(), &text);
    let (l, c) = place(&text, "\"xml\"");
    assert_eq!(out, format!("{file}:{l}:{c}: mqtt.format: unknown value \"xml\" (hint: one of: fhir, hl7v2, canonical)"));
    // An unknown key: at the key.
    let text = GOOD.replace("poll_period_ms = 2000", "poll_period_ms = 2000\nbaudd = 9600");
    let (file, out) = report(dir.path(), &text);
    let (l, _) = place(&text, "baudd");
    assert_eq!(out, format!("{file}:{l}:1: device[1].baudd: unknown key (hint: did you mean `baud`?)"));
    // A TOML syntax error: at the place the parser gives, with no key.
    let (file, out) = report(dir.path(), "[gateway]\nid = \"x\nsite = 3\n");
    let rest = out.strip_prefix(&format!("{file}:2:")).unwrap_or_else(|| panic!("{out}"));
    let (column, message) = rest.split_once(": ").unwrap();
    assert!(column.parse::<usize>().unwrap() >= 1, "{out}");
    assert!(message.starts_with("TOML syntax: "), "{out}");
    // A file that does not exist, found after parsing: at its own `ca =` line and value, not at
    // the `[mqtt.tls]` header.
    let text = format!("{GOOD}\n[mqtt.tls]\nca = \"/nonexistent/ca.pem\"\n");
    let (file, out) = report(dir.path(), &text);
    let (l, c) = place(&text, "ca = ");
    assert_eq!((l, c), (text.lines().count(), 6));
    assert_eq!(out, format!("{file}:{l}:6: mqtt.tls.ca: /nonexistent/ca.pem does not exist (hint: check the path)"));
    // A file that cannot be read at all: FILE: message.
    let e = config::load(&dir.path().join("none.toml")).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: cannot read: ", dir.path().join("none.toml").display())), "{e}");
}

#[test]
fn problems_found_after_parsing_point_at_their_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD
        .replace("format = \"canonical\"", "format = \"canonical\"\nqos = 0\ntopic_prefix = \"/medgw\"")
        .replace("[buffer]", "[status]\nbind = \"0.0.0.0:8080\"\n\n[buffer]")
        .replace("name = \"bed2-vent\"", "name = \"bed1-oximeter\"")
        .replace("port = \"/dev/ttyUSB1\"", "port = \"/dev/ttyUSB0\"");
    let errs = config::parse(&text, dir.path()).unwrap_err();
    let at = |key: &str| {
        let e = find(&errs, key);
        (e.line, e.column)
    };
    assert_eq!(at("mqtt.qos"), (place(&text, "qos = 0").0, 7));
    assert_eq!(at("mqtt.topic_prefix"), place(&text, "topic_prefix"));
    assert_eq!(at("status.bind"), place(&text, "0.0.0.0:8080"));
    let second = |needle: &str| {
        let i = text.lines().enumerate().filter(|(_, l)| l.contains(needle)).nth(1).unwrap().0;
        (i + 1, text.lines().nth(i).unwrap().find('"').unwrap() + 1)
    };
    assert_eq!(at("device[1].name"), second("name = \"bed1-oximeter\""));
    assert_eq!(at("device[1].port"), second("port = \"/dev/ttyUSB0\""));
    let e = find(&errs, "device[1].name");
    assert!(e.message.contains(&format!("already used on line {}", place(&text, "bed1-oximeter").0)), "{e}");
}

#[test]
fn check_config_prints_the_standard_form() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("medgw.toml");
    let text = format!("{GOOD}\n[mqtt.tls]\nca = \"/nonexistent/ca.pem\"\n");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_medgw")).arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().count();
    let want = format!("{}:{line}:6: mqtt.tls.ca: /nonexistent/ca.pem does not exist (hint: check the path)", file.display());
    assert_eq!(err.lines().next(), Some(want.as_str()), "{err}");
}

fn with_status(status: &str) -> String {
    GOOD.replace("[buffer]", &format!("[status]\n{status}\n\n[buffer]"))
}

fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef\n";

#[test]
fn an_empty_or_short_status_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = secret_file(dir.path(), "empty", "\n", 0o600);
    let text = with_status(&format!("bind = \"0.0.0.0:8080\"\ntoken_file = \"{empty}\""));
    let errs = config::parse(&text, dir.path()).unwrap_err();
    let e = find(&errs, "status.token_file");
    assert_eq!((e.line, e.column), place(&text, "token_file"));
    assert!(e.message.contains("is empty"), "{e}");
    assert_eq!(errs.len(), 1, "the missing token is not reported twice: {errs:#?}");

    let short = secret_file(dir.path(), "short", "0123456789abcde\n", 0o600);
    let errs = config::parse(&with_status(&format!("bind = \"0.0.0.0:8080\"\ntoken_file = \"{short}\"")), dir.path()).unwrap_err();
    let e = find(&errs, "status.token_file");
    assert!(e.message.contains("15 characters; at least 16"), "{e}");

    // Short is short on loopback too: the token is the only lock once someone rebinds.
    let errs = config::parse(&with_status(&format!("bind = \"127.0.0.1:8080\"\ntoken_file = \"{short}\"")), dir.path()).unwrap_err();
    assert!(find(&errs, "status.token_file").message.contains("at least 16"));

    let good = secret_file(dir.path(), "good", TOKEN, 0o600);
    let c = config::parse(&with_status(&format!("bind = \"0.0.0.0:8080\"\ntoken_file = \"{good}\"")), dir.path()).unwrap();
    assert_eq!(c.status.token.unwrap().expose(), TOKEN.trim_end());
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
}

#[test]
fn an_empty_token_variable_is_refused_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("medgw.toml");
    let text = with_status("bind = \"0.0.0.0:8080\"\ntoken_env = \"MEDGW_TEST_STATUS_TOKEN\"");
    std::fs::write(&file, &text).unwrap();
    let check = |value: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_medgw"))
            .arg("check-config")
            .arg(&file)
            .env("MEDGW_TEST_STATUS_TOKEN", value)
            .output()
            .unwrap()
    };
    let out = check("");
    assert_eq!(out.status.code(), Some(1));
    let (l, c) = place(&text, "token_env");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:{l}:{c}: status.token_env: environment variable MEDGW_TEST_STATUS_TOKEN is empty", file.display())),
        "{err}"
    );
    assert_eq!(check(TOKEN.trim_end()).status.code(), Some(0));
}

#[test]
fn secret_files_others_may_read_are_refused_off_loopback_and_warned_about_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let world = secret_file(dir.path(), "world", TOKEN, 0o644);
    let group = secret_file(dir.path(), "group", TOKEN, 0o640);
    for (file, who) in [(&world, "every user"), (&group, "its group")] {
        let text = with_status(&format!("bind = \"0.0.0.0:8080\"\ntoken_file = \"{file}\""));
        let errs = config::parse(&text, dir.path()).unwrap_err();
        let e = find(&errs, "status.token_file");
        assert_eq!((e.line, e.column), place(&text, "token_file"));
        assert!(e.message.contains(who), "{e}");
        assert!(e.hint.as_deref().unwrap().contains("chmod 600"), "{e}");
    }
    // On loopback only the gateway's own users could read it: a warning, and the file is accepted.
    let c = config::parse(&with_status(&format!("bind = \"127.0.0.1:8080\"\ntoken_file = \"{world}\"")), dir.path()).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:#?}", c.warnings);
    assert_eq!(c.warnings[0].key, "status.token_file");

    // The MQTT password the same way: a broker elsewhere makes it an error.
    let pw = |host: &str, file: &str| {
        GOOD.replace("host = \"127.0.0.1\"", &format!("host = \"{host}\"\nusername = \"gw\"\npassword_file = \"{file}\""))
    };
    let errs = config::parse(&pw("mqtt.hospital.example", &world), dir.path()).unwrap_err();
    assert!(find(&errs, "mqtt.password_file").message.contains("every user"));
    let c = config::parse(&pw("localhost", &world), dir.path()).unwrap();
    assert_eq!(c.warnings.iter().map(|w| w.key.as_str()).collect::<Vec<_>>(), ["mqtt.password_file"]);
    let private = secret_file(dir.path(), "private", "pw\n", 0o600);
    let c = config::parse(&pw("mqtt.hospital.example", &private), dir.path()).unwrap();
    assert!(c.warnings.is_empty());
    let empty = secret_file(dir.path(), "empty-pw", "", 0o600);
    assert!(find(&config::parse(&pw("mqtt.hospital.example", &empty), dir.path()).unwrap_err(), "mqtt.password_file")
        .message
        .contains("is empty"));

    // check-config prints the warning in the standard form and still says OK.
    let file = dir.path().join("medgw.toml");
    let text = pw("localhost", &world);
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_medgw")).arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let (l, c) = place(&text, "password_file");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("{}:{l}:{c}: warning: mqtt.password_file: {world} is readable by every user", file.display())),
        "{err}"
    );
}

#[test]
fn max_frame_rate_is_optional_and_range_checked() {
    let c = config::parse(GOOD, Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.devices[0].max_frame_rate, None, "the protocol's own limit by default");
    let text = GOOD.replace("bed = \"BED1\"\n", "bed = \"BED1\"\nmax_frame_rate = 2000\n");
    let c = config::parse(&text, Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.devices[0].max_frame_rate, Some(2000));
    let errs = errors(&GOOD.replace("bed = \"BED1\"\n", "bed = \"BED1\"\nmax_frame_rate = 0\n"));
    assert!(find(&errs, "device[0].max_frame_rate").message.contains("out of range"), "{errs:#?}");
}

#[test]
fn waves_are_off_by_default_and_set_per_gateway_and_device() {
    let c = config::parse(GOOD, Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.waves, config::WavesConfig::default());
    assert!(!c.waves.enabled && c.waves.segment_ms == 1000 && c.waves.qos == 0);
    assert!(!c.waves_enabled(&c.devices[0]));
    let text = GOOD.to_string() + "\n[waves]\nenabled = true\nsegment_ms = 500\nqos = 1\nqueue = 64\ndurable = false\n";
    let text = text.replace("bed = \"BED2\"\n", "bed = \"BED2\"\nwaves = false\n");
    let c = config::parse(&text, Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.waves, config::WavesConfig { enabled: true, segment_ms: 500, qos: 1, queue: 64, ..Default::default() });
    assert!(c.waves_enabled(&c.devices[0]));
    assert!(!c.waves_enabled(&c.devices[1]), "the device's own key wins");
    let errs = errors(&(GOOD.to_string() + "\n[waves]\nqos = 2\nsegment_ms = 10\nsegment = 1\n"));
    assert!(find(&errs, "waves.qos").message.contains("out of range"), "{errs:#?}");
    assert!(find(&errs, "waves.segment_ms").message.contains("out of range"), "{errs:#?}");
    assert!(errs.iter().any(|e| e.key.contains("segment")), "{errs:#?}");
}

#[test]
fn durable_waves_force_qos_1_and_take_a_budget_of_their_own() {
    let c =
        config::parse(&(GOOD.to_string() + "\n[waves]\nenabled = true\ndurable = true\nmax_bytes = \"16MB\"\n"), Path::new("/etc/medgw"))
            .unwrap();
    assert!(c.waves.durable);
    assert_eq!((c.waves.qos, c.waves.max_bytes), (1, 16_000_000), "durable implies QoS 1");
    assert_eq!(config::WavesConfig::default().max_bytes, 64 << 20);
    // QoS 0 cannot tell the gateway when to delete a segment.
    let errs = errors(&(GOOD.to_string() + "\n[waves]\ndurable = true\nqos = 0\n"));
    assert!(find(&errs, "waves.qos").message.contains("QoS 1"), "{errs:#?}");
    // Observations keep at least half of the buffer.
    let big = GOOD.to_string() + "\n[waves]\ndurable = true\nmax_bytes = \"900MB\"\n";
    let errs = errors(&big);
    assert!(find(&errs, "waves.max_bytes").message.contains("half of buffer.max_bytes"), "{errs:#?}");
    assert!(find(&errors(&(GOOD.to_string() + "\n[waves]\nmax_bytes = \"tiny\"\n")), "waves.max_bytes").message.contains("size"));
    // Not durable: the budget is not checked against the buffer (nothing is stored).
    assert!(config::parse(&big.replace("durable = true", "durable = false"), Path::new("/etc/medgw")).is_ok());
}

#[test]
fn an_adt_table_is_checked_and_used_by_run() {
    let good = format!("{GOOD}\n[adt]\nlisten = \"127.0.0.1:2575\"\nallow = [\"127.0.0.1\"]\n[[adt.beds]]\ngateway_bed = \"BED1\"\nfacility = \"F\"\npoint_of_care = \"ICU\"\nroom = \"1\"\nbed = \"A\"\n");
    let c = config::parse(&good, Path::new("/etc/medgw")).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let adt = c.adt.expect("[adt] read for medgw run");
    assert_eq!(adt.beds.mappings()[0].gateway_bed, "BED1");
    // A mapped bed that no device uses is a warning: likely a typo, and that bed's patients
    // would reach no device.
    let typo = config::parse(&good.replace("gateway_bed = \"BED1\"", "gateway_bed = \"BDE1\""), Path::new("/etc/medgw")).unwrap();
    assert_eq!(typo.warnings.iter().map(|w| w.key.as_str()).collect::<Vec<_>>(), ["adt.beds"]);
    // A listener that would accept no one is an error at the table, as `medgw adt` reports it.
    let bad = good.replace("allow = [\"127.0.0.1\"]\n", "");
    let errs = errors(&bad);
    assert!(find(&errs, "adt").message.contains("allow"), "{errs:#?}");
}

/// `waves` (issue 17): an IntelliVue device names the waves it polls; off when absent; unknown
/// names and other protocols are refused.
#[test]
fn intellivue_waves_are_named_and_checked() {
    use medgw_protocols::wire::intellivue::wave::physio;
    let ivue = "[[device]]\nname = \"bed3-monitor\"\nprotocol = \"intellivue\"\nport = \"/dev/ttyUSB2\"\nbed = \"BED3\"\n";
    let c = config::parse(&format!("{GOOD}\n{ivue}waves = [\"ecg-ii\", \"pleth\", \"pleth\"]\n"), Path::new("/etc/medgw")).unwrap();
    assert_eq!(c.devices[2].wave_poll, [physio::NOM_ECG_ELEC_POTL_II, physio::NOM_PLETH]);
    assert_eq!(c.devices[2].waves, Some(true), "the waves it polls are published");
    assert!(c.devices[0].wave_poll.is_empty() && c.devices[1].wave_poll.is_empty(), "off by default");
    assert_eq!((c.devices[0].waves, c.devices[1].waves), (None, None));
    let errs = errors(&format!("{GOOD}\n{ivue}waves = [\"ecg-ii\", \"spo2\"]\n"));
    assert!(find(&errs, "device[2].waves").hint.as_deref().unwrap_or("").contains("pleth"), "{errs:#?}");
    let errs = errors(&GOOD.replace("poll_period_ms = 2000", "poll_period_ms = 2000\nwaves = [\"pleth\"]"));
    assert!(find(&errs, "device[1].waves").message.contains("intellivue"), "{errs:#?}");
}
