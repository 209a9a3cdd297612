//! The association state on disk, beside the buffer: JSON, replaced atomically.
//!
//! Written (temporary file, fsync, rename, fsync of the directory) before a message is
//! acknowledged, so an AA means the change survives a power cut, and a restart or a feed that
//! is down keeps every association.

use std::io::Write;
use std::path::{Path, PathBuf};

use medgw_protocols::association::{Associations, BedMap};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: not an association state: {1}")]
    Corrupt(PathBuf, serde_json::Error),
}

/// Loads the state, or an empty one when the file does not exist yet. A file that exists but
/// cannot be read is an error, never silently an empty state: that would drop every association.
pub fn load(path: &Path, beds: BedMap) -> Result<Associations, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let s: Associations = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(path.into(), e))?;
            Ok(s.with_config(beds))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Associations::new(beds)),
        Err(e) => Err(StoreError::Io(path.into(), e)),
    }
}

pub fn save(path: &Path, state: &Associations) -> Result<(), StoreError> {
    let io = |e| StoreError::Io(path.into(), e);
    let json = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt(path.into(), e))?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}
