//! The `[mqtt]` table and its `[mqtt.tls]`; the `tls` table reader shared with `[[sink]]`.

use std::ops::Range;

use super::model::{MqttConfig, MqttProtocol, PayloadFormat, TlsConfig};
use super::reader::{Reader, Tbl};

impl Reader<'_> {
    /// Builds the TLS client configuration as `run` will, and reports a file that is not what
    /// its key says (garbage, a key given as the certificate, the key of another certificate)
    /// at that key. `spans` are those of ca, cert and key; `tls_path` is the table's key path
    /// (`mqtt.tls`), `peer` what the CA signed (`broker`).
    pub(super) fn tls_files(&mut self, tls: &TlsConfig, spans: &[Option<Range<usize>>; 3], tls_path: &str, peer: &str) {
        use crate::sink::mqtt::transport::{self, TlsFile, TransportError};
        match transport::tls_config(tls) {
            Ok(_) => {}
            Err(TransportError::TlsFile { which, path, problem }) => {
                let (span, hint) = match which {
                    TlsFile::Ca => (&spans[0], format!("the PEM certificate of the CA that signed the {peer}'s certificate")),
                    TlsFile::Cert => (&spans[1], "the gateway's client certificate (PEM), issued for the key in `key`".to_string()),
                    TlsFile::Key => (&spans[2], "the unencrypted PEM private key of the certificate in `cert`".to_string()),
                };
                let span = span.clone().unwrap_or_default();
                self.err(span, &format!("{tls_path}.{}", which.key()), format!("{}: {problem}", path.display()), Some(hint));
            }
            Err(e) => self.err(spans[0].clone().unwrap_or_default(), tls_path, e.to_string(), None),
        }
    }

    /// A `tls` table (`[mqtt.tls]`, `[sink.tls]`): the CA that signed the `peer`'s certificate,
    /// and optionally the gateway's client certificate and key; the files are checked as the
    /// connection will load them.
    pub(super) fn tls_table(&mut self, t: &mut Tbl, peer: &str) -> Option<TlsConfig> {
        let mut tt = self.table(t, "tls")?;
        let ca = self.path(&mut tt, "ca", Some(&format!("the CA certificate (PEM) that signed the {peer}'s certificate")));
        let cert = self.path(&mut tt, "cert", None);
        let key = self.path(&mut tt, "key", None);
        let mut files_exist = true;
        for (k, p) in [("ca", &ca), ("cert", &cert), ("key", &key)] {
            if let Some((p, span)) = p {
                if !p.is_file() {
                    files_exist = false;
                    self.err(span.clone(), &Self::key(&tt, k), format!("{} does not exist", p.display()), Some("check the path".into()));
                }
            }
        }
        match (&cert, &key) {
            (Some((_, span)), None) => self.err(
                span.clone(),
                &Self::key(&tt, "cert"),
                "is given without key",
                Some("a client certificate needs its private key".into()),
            ),
            (None, Some((_, span))) => self.err(
                span.clone(),
                &Self::key(&tt, "key"),
                "is given without cert",
                Some("a private key needs its client certificate".into()),
            ),
            _ => {}
        }
        let tls_path = tt.path.clone();
        self.finish(tt, &["ca", "cert", "key"]);
        let spans = [&ca, &cert, &key].map(|f| f.as_ref().map(|(_, span)| span.clone()));
        let tls = ca.map(|(ca, _)| TlsConfig { ca, cert: cert.map(|c| c.0), key: key.map(|k| k.0) });
        if let (Some(tls), true) = (&tls, files_exist && spans[1].is_some() == spans[2].is_some()) {
            self.tls_files(tls, &spans, &tls_path, peer);
        }
        tls
    }

    pub(super) fn mqtt(&mut self, top: &mut Tbl, gateway_id: &str) -> Option<MqttConfig> {
        let Some(mut t) = self.table(top, "mqtt") else {
            self.missing(top, "mqtt", "add an [mqtt] table with at least host = \"broker.example\"");
            return None;
        };
        let host = self.string(&mut t, "host", Some("the broker's host name, e.g. host = \"mqtt.hospital.local\""));
        let tls = self.tls_table(&mut t, "broker");
        let port = self.int(&mut t, "port", 1..=65535, if tls.is_some() { 8883 } else { 1883 }) as u16;
        let client_id = self.string(&mut t, "client_id", None).map(|s| s.0).unwrap_or_else(|| format!("medgw-{gateway_id}"));
        let keep_alive_s = self.int(&mut t, "keep_alive_s", 5..=3600, 30) as u16;
        let qos_span = self.get(&mut t, "qos").map(|v| v.span());
        let qos = self.int(&mut t, "qos", 0..=2, 1) as u8;
        if let (0, Some(span)) = (qos, qos_span) {
            self.err(
                span,
                "mqtt.qos",
                "QoS 0 has no acknowledgement, so the buffer could not know what was delivered",
                Some("use qos = 1 (or 2)".into()),
            );
        }
        let (topic_prefix, prefix_span) = self.string(&mut t, "topic_prefix", None).unwrap_or_else(|| ("medgw/v1".to_string(), 0..0));
        if topic_prefix.contains(['+', '#']) || topic_prefix.starts_with('/') || topic_prefix.ends_with('/') {
            self.err(
                prefix_span,
                "mqtt.topic_prefix",
                format!("{topic_prefix:?} is not a valid topic prefix"),
                Some("no wildcards, no leading or trailing '/'".into()),
            );
        }
        let format = self.choice(
            &mut t,
            "format",
            &[("fhir", PayloadFormat::Fhir), ("hl7v2", PayloadFormat::Hl7v2), ("canonical", PayloadFormat::Canonical)],
            PayloadFormat::Fhir,
        );
        let protocol = self.choice(
            &mut t,
            "protocol",
            &[("auto", MqttProtocol::Auto), ("5", MqttProtocol::V5), ("3.1.1", MqttProtocol::V311)],
            MqttProtocol::Auto,
        );
        let username = self.string(&mut t, "username", None).map(|s| s.0);
        let password = self.secret(&mut t, "password_file", "password_env");
        if let Some(p) = &password {
            if username.is_none() {
                self.err(p.span.clone(), "mqtt.username", "a password is set but no username", Some("add username = \"...\"".into()));
            }
            // A broker on this machine: only its users could use the password.
            let host_name = host.as_ref().map(|h| h.0.as_str()).unwrap_or("");
            let local = host_name == "localhost" || host_name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            self.secret_permissions(p, !local, &format!("the MQTT account of the broker {host_name}"));
        }
        let password = password.map(|p| p.secret);
        let max_inflight = self.int(&mut t, "max_inflight", 1..=65535, 1000) as u16;
        self.finish(
            t,
            &[
                "host",
                "port",
                "client_id",
                "keep_alive_s",
                "qos",
                "topic_prefix",
                "format",
                "protocol",
                "tls",
                "username",
                "password_file",
                "password_env",
                "max_inflight",
            ],
        );
        Some(MqttConfig {
            host: host?.0,
            port,
            client_id,
            keep_alive_s,
            qos,
            topic_prefix,
            format,
            protocol,
            tls,
            username,
            password,
            max_inflight,
        })
    }
}
