//! The store's files beside the database (`-wal`, `.lock`, `.reserve`, quarantined copies):
//! their names, their size on disk, and the directory fsync that makes a created or renamed
//! one survive a power cut. Used by the store, the disk reserve, the salvage and `cli.rs`.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::BufferError;

/// `path` with `suffix` appended to its file name (`buffer.db` → `buffer.db-wal`).
pub(super) fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The disk reserve's file beside the database (`reserve.rs`).
pub(super) fn reserve_path(db: &Path) -> PathBuf {
    suffixed(db, ".reserve")
}

/// Bytes on disk: the database file, its write-ahead log and the disk reserve.
pub(super) fn file_bytes(path: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    len(path) + len(&suffixed(path, "-wal")) + len(&reserve_path(path))
}

/// An I/O error on one of the store's files; a full disk is [`BufferError::DiskFull`].
pub(super) fn io_err(what: &str, path: &Path, e: std::io::Error) -> BufferError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        return BufferError::DiskFull;
    }
    BufferError::storage(format!("{what} {}", path.display()), e)
}

/// fsync of the directory holding `path`, so that a created or renamed file survives a power
/// cut (SQLite does this itself for the WAL, not for the database file).
pub(super) fn sync_dir(path: &Path) -> Result<(), BufferError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err("fsync directory", dir, e))
}
