//! The byte stream to the broker: TCP, or TLS (rustls) with an optional client certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::TlsConfig;

/// A connected stream to the broker.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The file of a TLS configuration a problem is in, so that `check-config` can report it at
/// that file's key (`mqtt.tls.ca`, `.cert`, `.key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Ca,
    Cert,
    Key,
}

impl TlsFile {
    /// The key of the file in `[mqtt.tls]`.
    pub fn key(&self) -> &'static str {
        match self {
            TlsFile::Ca => "ca",
            TlsFile::Cert => "cert",
            TlsFile::Key => "key",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connecting to {addr} timed out")]
    Timeout { addr: String },
    #[error("TLS set-up: {0}")]
    TlsConfig(String),
    #[error("TLS {} {}: {problem}", which.key(), path.display())]
    TlsFile { which: TlsFile, path: PathBuf, problem: String },
    #[error("TLS handshake with {addr}: {source}")]
    Handshake { addr: String, source: std::io::Error },
}

fn bad(which: TlsFile, path: &Path, problem: impl Into<String>) -> TransportError {
    TransportError::TlsFile { which, path: path.to_path_buf(), problem: problem.into() }
}

/// Builds the rustls client configuration once: the CA that signed the broker's certificate,
/// and the gateway's certificate and key when the broker requires client authentication.
/// `check-config` builds it too, so a file that is not what its key says (a key given as the
/// certificate, a damaged CA, a key of another certificate) is refused before `run` starts.
pub fn tls_config(tls: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(TlsFile::Ca, &tls.ca)? {
        roots.add(cert).map_err(|e| bad(TlsFile::Ca, &tls.ca, format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::TlsConfig(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(TlsFile::Cert, cert)?;
            let key_der = read_key(key)?;
            // rustls compares the key's public half with the certificate's.
            builder.with_client_auth_cert(chain, key_der).map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => {
                    bad(TlsFile::Key, key, format!("is not the private key of the certificate {}", cert.display()))
                }
                rustls::Error::InvalidCertificate(e) => bad(TlsFile::Cert, cert, format!("not a usable certificate: {e}")),
                other => bad(TlsFile::Key, key, format!("not a usable private key: {other}")),
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// What a PEM file holds: (certificates, private keys).
fn pem_items(which: TlsFile, path: &Path) -> Result<(Vec<CertificateDer<'static>>, Vec<PrivateKeyDer<'static>>), TransportError> {
    let pem = std::fs::read(path).map_err(|e| bad(which, path, e.to_string()))?;
    let (mut certs, mut keys) = (Vec::new(), Vec::new());
    for item in rustls_pemfile::read_all(&mut pem.as_slice()) {
        match item.map_err(|e| bad(which, path, format!("not valid PEM: {e}")))? {
            rustls_pemfile::Item::X509Certificate(c) => certs.push(c),
            rustls_pemfile::Item::Pkcs1Key(k) => keys.push(k.into()),
            rustls_pemfile::Item::Pkcs8Key(k) => keys.push(k.into()),
            rustls_pemfile::Item::Sec1Key(k) => keys.push(k.into()),
            _ => {}
        }
    }
    Ok((certs, keys))
}

pub(crate) fn read_certs(which: TlsFile, path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    match pem_items(which, path)? {
        (certs, _) if !certs.is_empty() => Ok(certs),
        (_, keys) if !keys.is_empty() => Err(bad(which, path, "holds a private key, not a certificate")),
        _ => Err(bad(which, path, "no PEM certificate (-----BEGIN CERTIFICATE-----) found")),
    }
}

pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TransportError> {
    match pem_items(TlsFile::Key, path)? {
        (_, keys) if !keys.is_empty() => Ok(keys.into_iter().next().expect("not empty")),
        (certs, _) if !certs.is_empty() => Err(bad(TlsFile::Key, path, "holds a certificate, not a private key")),
        _ => Err(bad(TlsFile::Key, path, "no unencrypted PEM private key (-----BEGIN PRIVATE KEY-----) found")),
    }
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
