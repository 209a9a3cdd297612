//! Where a Bluetooth device's [`Cursor`] is kept: `ble/<device name>.json` in the buffer's
//! directory, beside the observations it describes (backups and the systemd unit's
//! `StateDirectory` cover both).
//!
//! Written atomically (temporary file, fsync, rename, fsync of the directory), so a crash
//! leaves the old cursor or the new one, never a torn file. A missing or unreadable file is an
//! empty cursor: stored records are fetched from the beginning (they repeat with the same
//! observation ids), which is safe; a lost record would not be.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::gatt_client::Cursor;

/// The cursor file of device `name` next to the buffer at `buffer_path`.
pub fn path_for(buffer_path: &Path, name: &str) -> PathBuf {
    buffer_path.parent().unwrap_or(Path::new(".")).join("ble").join(format!("{name}.json"))
}

pub fn load(path: &Path) -> Cursor {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "unreadable Bluetooth cursor: stored records are fetched from the beginning");
            Cursor::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Cursor::default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the Bluetooth cursor: stored records are fetched from the beginning");
            Cursor::default()
        }
    }
}

pub fn store(path: &Path, cursor: &Cursor) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(cursor).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = path_for(&dir.path().join("buffer.db"), "bed1-glucose");
        assert_eq!(p, dir.path().join("ble/bed1-glucose.json"));
        assert_eq!(load(&p), Cursor::default());
        let c = Cursor { device: Some("sn:x:y:1".into()), glucose_seq: Some(41), plx_last: Some(7) };
        store(&p, &c).unwrap();
        assert_eq!(load(&p), c);
        std::fs::write(&p, b"{\"glucose_seq\": 4").unwrap();
        assert_eq!(load(&p), Cursor::default(), "a torn file is an empty cursor");
    }
}
