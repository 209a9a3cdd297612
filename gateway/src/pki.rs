//! A throw-away PKI for `medgw bench --tls` and the end-to-end tests: a CA, a broker certificate
//! for 127.0.0.1/localhost and a client certificate, made with the `openssl` command.
//!
//! Why the openssl command and not a Rust crate: the broker under test is Mosquitto, which
//! loads PEM files that OpenSSL itself must accept; certificates made by the same tool that
//! production sites use leave no doubt about what is being exercised. The certificates carry
//! subjectAltNames and extended key usages because rustls (unlike OpenSSL) ignores the CN.
//!
//! Never for production: the keys are unencrypted and world-readable (Mosquitto started as root
//! drops to its own user and must read them).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files made by [`generate`], all PEM.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| anyhow::anyhow!("openssl: {e} (apt-get install openssl)"))?;
    anyhow::ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// A key and a certificate `name`.pem signed by the CA in `dir`, with the extensions `ext`.
fn issue(dir: &Path, name: &str, cn: &str, ext: &str) -> anyhow::Result<()> {
    let (key, csr, pem, extfile) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
    std::fs::write(dir.join(&extfile), ext)?;
    openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &format!("/CN={cn}")])?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ],
    )
}

/// Makes the CA, the broker's certificate and a client certificate for `client_cn` in `dir`.
pub fn generate(dir: &Path, client_cn: &str) -> anyhow::Result<PkiFiles> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=medgw test CA",
        ],
    )?;
    issue(
        dir,
        "server",
        "localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )?;
    issue(
        dir,
        "client",
        client_cn,
        &format!("subjectAltName=DNS:{client_cn}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for f in ["ca.pem", "server.pem", "server.key", "client.pem", "client.key"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(PkiFiles {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    })
}
