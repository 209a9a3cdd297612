//! TLS files that are not what their key says are refused by `check-config` at that key, and a
//! TLS set-up that cannot be built stops `medgw run` instead of leaving a gateway that never
//! sends.

use std::path::Path;
use std::time::{Duration, Instant};

use medgw::config::{self, ConfigError};

fn text(dir: &Path, ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "[gateway]\nid = \"gw\"\nsite = \"H\"\nunit = \"U\"\n\n[mqtt]\nhost = \"127.0.0.1\"\n\n[mqtt.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\n[buffer]\npath = \"{}\"\n",
        ca.display(),
        cert.display(),
        key.display(),
        dir.join("buffer.db").display()
    )
}

/// The certificates of the gateway's throw-away PKI, made with openssl; `None` without openssl.
fn pki(dir: &Path, cn: &str) -> Option<medgw::pki::PkiFiles> {
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: openssl is not installed");
        return None;
    }
    Some(medgw::pki::generate(dir, cn).unwrap())
}

/// The single error of `text`, which must be at the line of `key =` and the column of its value.
fn the_error(text: &str, key: &str) -> ConfigError {
    let errs = config::parse(text, Path::new("/")).expect_err("the TLS files should be refused");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = errs.into_iter().next().unwrap();
    let line = text.lines().position(|l| l.starts_with(&format!("{key} = "))).unwrap() + 1;
    assert_eq!((e.key.as_str(), e.line, e.column), (format!("mqtt.tls.{key}").as_str(), line, key.len() + 4), "{e}");
    e
}

#[test]
fn tls_files_that_are_not_what_their_key_says_are_refused_at_that_key() {
    let dir = tempfile::tempdir().unwrap();
    let Some(f) = pki(dir.path(), "gw") else { return };
    let d = dir.path();
    config::parse(&text(d, &f.ca, &f.client_cert, &f.client_key), d).expect("the matching files are accepted");

    let garbage = d.join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let e = the_error(&text(d, &garbage, &f.client_cert, &f.client_key), "ca");
    assert!(e.message.contains("no PEM certificate"), "{e}");

    // PEM armour around bytes that are no certificate.
    let armoured = d.join("armoured.pem");
    std::fs::write(&armoured, "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n").unwrap();
    let e = the_error(&text(d, &armoured, &f.client_cert, &f.client_key), "ca");
    assert!(e.message.contains("not a usable CA certificate"), "{e}");

    let e = the_error(&text(d, &f.ca, &f.client_cert, &f.client_cert), "key");
    assert!(e.message.contains("holds a certificate, not a private key"), "{e}");
    let e = the_error(&text(d, &f.ca, &f.client_key, &f.client_key), "cert");
    assert!(e.message.contains("holds a private key, not a certificate"), "{e}");
    let e = the_error(&text(d, &f.client_key, &f.client_cert, &f.client_key), "ca");
    assert!(e.message.contains("holds a private key"), "{e}");

    // The key of another certificate (the broker's): rustls compares the public halves.
    let e = the_error(&text(d, &f.ca, &f.client_cert, &f.server_key), "key");
    assert!(e.message.contains("is not the private key of the certificate"), "{e}");
}

#[test]
fn run_exits_with_an_error_when_the_tls_files_are_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let Some(f) = pki(dir.path(), "gw") else { return };
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let file = dir.path().join("medgw.toml");
    std::fs::write(&file, text(dir.path(), &garbage, &f.client_cert, &f.client_key)).unwrap();
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_medgw"))
        .args(["run", "--config"])
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("medgw run is still running with an unusable CA file");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("mqtt.tls.ca") && err.contains("no PEM certificate"), "{err}");
}

/// The second line: a configuration that did not come through `check-config` (or a file that
/// changed since) still cannot start a sink that never sends.
#[tokio::test]
async fn the_pipeline_does_not_start_with_a_tls_set_up_it_cannot_build() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = d.join("ca.pem");
    let plain = "[gateway]\nid = \"gw\"\nsite = \"H\"\nunit = \"U\"\n\n[mqtt]\nhost = \"127.0.0.1\"\n\n[buffer]\npath = \"buffer.db\"\n";
    let mut c = config::parse(plain, d).unwrap();
    std::fs::write(&ca, "not a certificate\n").unwrap();
    c.mqtt.tls = Some(config::TlsConfig { ca, cert: None, key: None });
    let shutdown = tokio_util::sync::CancellationToken::new();
    let err = match medgw::pipeline::start(c, shutdown.clone()).await {
        Ok(_) => panic!("the pipeline started with an unusable CA file"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("MQTT sink cannot start") && err.contains("no PEM certificate"), "{err}");
    assert!(!d.join("buffer.db").exists(), "nothing was opened before the TLS set-up was checked");
}
