//! The byte stream to the broker: TCP, or TLS (rustls) with an optional client certificate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::TlsConfig;

/// A connected stream to the broker.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connecting to {addr} timed out")]
    Timeout { addr: String },
    #[error("TLS set-up: {0}")]
    TlsConfig(String),
    #[error("TLS handshake with {addr}: {source}")]
    Handshake { addr: String, source: std::io::Error },
}

/// Builds the rustls client configuration once: the CA that signed the broker's certificate,
/// and the gateway's certificate and key when the broker requires client authentication.
pub fn tls_config(tls: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(&tls.ca)? {
        roots.add(cert).map_err(|e| TransportError::TlsConfig(format!("CA {}: {e}", tls.ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::TlsConfig(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = read_key(key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TransportError::TlsConfig(format!("client certificate {}: {e}", cert.display())))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TransportError> {
    let pem = std::fs::read(path).map_err(|e| TransportError::TlsConfig(format!("{}: {e}", path.display())))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| TransportError::TlsConfig(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TransportError::TlsConfig(format!("{}: no PEM certificate found", path.display())));
    }
    Ok(certs)
}

pub(crate) fn read_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TransportError> {
    let pem = std::fs::read(path).map_err(|e| TransportError::TlsConfig(format!("{}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| TransportError::TlsConfig(format!("{}: {e}", path.display())))?
        .ok_or_else(|| TransportError::TlsConfig(format!("{}: no PEM private key found", path.display())))
}

/// Opens a TCP (and, with `tls`, TLS) connection to `host:port`.
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<Box<dyn Stream>, TransportError> {
    let addr = format!("{host}:{port}");
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(TransportError::Connect { addr, source }),
        Err(_) => return Err(TransportError::Timeout { addr }),
    };
    // Small messages, latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else { return Ok(Box::new(tcp)) };
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| TransportError::TlsConfig(format!("server name {host}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(source)) => Err(TransportError::Handshake { addr, source }),
        Err(_) => Err(TransportError::Timeout { addr }),
    }
}
