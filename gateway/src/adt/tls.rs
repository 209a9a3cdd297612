//! TLS for the ADT listener (optional): the gateway's certificate, and with `client_ca` only
//! interface engines holding a certificate from that CA may connect (on top of `adt.allow`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::sink::mqtt::transport::{read_certs, read_key, TlsFile};

/// `[adt.tls]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

pub fn server_config(t: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(|e| e.to_string())?;
    let builder = match &t.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(TlsFile::Ca, ca).map_err(|e| e.to_string())? {
                roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let chain = read_certs(TlsFile::Cert, &t.cert).map_err(|e| e.to_string())?;
    let key = read_key(&t.key).map_err(|e| e.to_string())?;
    let config = builder.with_single_cert(chain, key).map_err(|e| format!("{}: {e}", t.cert.display()))?;
    Ok(Arc::new(config))
}
