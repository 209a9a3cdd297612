//! The `[adt]` table of the configuration file.
//!
//! ```toml
//! [adt]
//! listen = "0.0.0.0:2575"
//! allow = ["10.20.0.15", "10.20.1.0/24"]   # the interface engine(s); everyone else is refused
//! zone = "Europe/Berlin"                   # for ADT times written without a zone
//! application = "MEDGW"                    # MSH-3 of our ACKs (default: the message's MSH-5)
//! tls = { cert = "/etc/medgw/adt.pem", key = "/etc/medgw/adt.key", client_ca = "/etc/medgw/engine-ca.pem" }
//! [[adt.beds]]
//! gateway_bed = "icu-3b"
//! facility = "STMARY"
//! point_of_care = "ICU"
//! room = "03"
//! bed = "B"
//! ```
//! Read on its own from the file (the main configuration ignores unknown tables), until a later
//! change validates it with the rest of `config/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use medgw_protocols::association::{BedMap, BedMapping};

use crate::config::AllowRule;

#[derive(Debug, serde::Deserialize)]
struct File {
    adt: Option<AdtToml>,
    buffer: Option<BufferToml>,
}

#[derive(Debug, serde::Deserialize)]
struct BufferToml {
    path: PathBuf,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AdtToml {
    listen: Option<SocketAddr>,
    #[serde(default)]
    allow: Vec<String>,
    zone: Option<String>,
    #[serde(default)]
    application: String,
    #[serde(default)]
    facility: String,
    #[serde(default)]
    beds: Vec<BedMapping>,
    state: Option<PathBuf>,
    tls: Option<super::tls::TlsSettings>,
    processing_id: Option<String>,
}

/// The checked `[adt]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtSettings {
    pub listen: Option<SocketAddr>,
    pub allow: Vec<AllowRule>,
    pub zone: jiff::tz::TimeZone,
    pub application: String,
    pub facility: String,
    pub beds: BedMap,
    /// Where the association state is kept: `state`, else beside the buffer (`<buffer>.adt.json`).
    pub state: Option<PathBuf>,
    /// `[adt.tls]`: certificate and key, and optionally the CA of client certificates required.
    pub tls: Option<super::tls::TlsSettings>,
    /// MSH-11 accepted: `P` unless configured (`T` for a test system's training feed).
    pub processing_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Toml(PathBuf, toml::de::Error),
    #[error("{0}: no [adt] table")]
    Missing(PathBuf),
    #[error("adt.allow: {0:?} is not an address or network")]
    Allow(String),
    #[error("adt.zone: {0}")]
    Zone(String),
    #[error("adt.beds: {0}")]
    Beds(#[from] medgw_protocols::association::BedMapError),
    #[error("adt.listen is set but adt.allow is empty: the listener would accept no one")]
    NoAllow,
}

impl AdtSettings {
    pub fn load(path: &Path) -> Result<AdtSettings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Read(path.into(), e))?;
        let mut s = AdtSettings::parse(&text).map_err(|e| match e {
            SettingsError::Toml(_, t) => SettingsError::Toml(path.into(), t),
            SettingsError::Missing(_) => SettingsError::Missing(path.into()),
            e => e,
        })?;
        s.resolve(path.parent().unwrap_or(Path::new(".")));
        Ok(s)
    }

    /// Relative paths (the state file, the TLS files) are relative to the configuration file's
    /// directory, as the rest of the configuration's paths are.
    pub fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = &mut self.state {
            fix(p);
        }
        if let Some(t) = &mut self.tls {
            fix(&mut t.cert);
            fix(&mut t.key);
            if let Some(ca) = &mut t.client_ca {
                fix(ca);
            }
        }
    }

    pub fn parse(text: &str) -> Result<AdtSettings, SettingsError> {
        let file: File = toml::from_str(text).map_err(|e| SettingsError::Toml(PathBuf::new(), e))?;
        let adt = file.adt.ok_or(SettingsError::Missing(PathBuf::new()))?;
        let allow =
            adt.allow.iter().map(|a| AllowRule::parse(a).ok_or_else(|| SettingsError::Allow(a.clone()))).collect::<Result<Vec<_>, _>>()?;
        if adt.listen.is_some() && allow.is_empty() {
            return Err(SettingsError::NoAllow);
        }
        let zone = match &adt.zone {
            Some(z) => jiff::tz::TimeZone::get(z).map_err(|e| SettingsError::Zone(format!("{z}: {e}")))?,
            None => jiff::tz::TimeZone::system(),
        };
        let state = adt.state.or_else(|| file.buffer.map(|b| state_beside(&b.path)));
        Ok(AdtSettings {
            listen: adt.listen,
            allow,
            zone,
            application: adt.application,
            facility: adt.facility,
            beds: BedMap::new(adt.beds)?,
            state,
            tls: adt.tls,
            processing_id: adt.processing_id.unwrap_or_else(|| "P".into()),
        })
    }
}

/// `<buffer>.adt.json` next to the buffer file: the same disk, the same backups.
pub fn state_beside(buffer: &Path) -> PathBuf {
    let mut name = buffer.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".adt.json");
    buffer.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_adt_table_and_places_state_beside_the_buffer() {
        let s = AdtSettings::parse(
            "[buffer]\npath = \"/var/lib/medgw/buffer.db\"\n[adt]\nlisten = \"127.0.0.1:2575\"\nallow = [\"10.0.0.0/8\"]\nzone = \"Europe/Berlin\"\n[[adt.beds]]\ngateway_bed = \"icu-3b\"\npoint_of_care = \"ICU\"\nroom = \"03\"\nbed = \"B\"\n",
        )
        .unwrap();
        assert_eq!(s.state.as_deref(), Some(Path::new("/var/lib/medgw/buffer.db.adt.json")));
        // Relative paths are the configuration directory's, like the buffer's.
        let mut rel = AdtSettings::parse("[buffer]\npath = \"buffer.db\"\n[adt]\ntls = { cert = \"a.pem\", key = \"a.key\" }\n").unwrap();
        rel.resolve(Path::new("/etc/medgw"));
        assert_eq!(rel.state.as_deref(), Some(Path::new("/etc/medgw/buffer.db.adt.json")));
        assert_eq!(rel.tls.unwrap().cert, Path::new("/etc/medgw/a.pem"));
        assert_eq!(s.beds.mappings().len(), 1);
        assert!(s.allow[0].contains("10.1.2.3".parse().unwrap()));
        assert!(matches!(AdtSettings::parse("[adt]\nlisten = \"127.0.0.1:2575\"\n"), Err(SettingsError::NoAllow)));
        assert!(matches!(AdtSettings::parse("[adt]\nallow = [\"nope\"]\n"), Err(SettingsError::Allow(_))));
        assert!(matches!(AdtSettings::parse("[adt]\ntypo = 1\n"), Err(SettingsError::Toml(..))));
        let tls = AdtSettings::parse("[adt]\ntls = { cert = \"a.pem\", key = \"a.key\" }\n").unwrap().tls.unwrap();
        assert_eq!((tls.cert.to_str(), tls.client_ca), (Some("a.pem"), None));
    }
}
