//! The disk reserve: a file of incompressible bytes beside the buffer, given up when the OS
//! reports the disk full.
//!
//! On a full disk SQLite cannot move out of trouble by itself: a checkpoint may need to grow
//! the database file, and deleting old entries needs new WAL frames, so both fail with
//! SQLITE_FULL and the buffer would be stuck (not even acknowledgements could be applied).
//! Deleting the reserve frees exactly the room those two need. (CockroachDB's "emergency
//! ballast" file is the same idea.)
//!
//! Its size is the WAL budget, which is sized to the file system (see `Budget` in `sqlite.rs`):
//! a fixed 16 MB reserve could not even be made on a small SD-card partition. Once given up it
//! is made again only when the space has really returned (twice its size free, so that making
//! it does not fill the disk at once) and not sooner than [`HOLDOFF`] after it was given up:
//! writing it is flash wear, and a reserve made and given up in a loop would be all wear.
//!
//! The bytes are pseudo-random rather than zeros so that a compressing or de-duplicating file
//! system (ZFS, btrfs with compression) really allocates them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::files::{reserve_path, sync_dir};

/// After a failed attempt, the reserve is not tried again for this long.
pub(super) const RETRY: Duration = Duration::from_secs(10);
/// After the reserve was given up, it is not made again for this long.
pub(super) const HOLDOFF: Duration = Duration::from_secs(60);

/// Size and free space of the file system holding `path`, in bytes (for an unprivileged
/// process: `f_bavail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Space {
    pub total: u64,
    pub avail: u64,
}

pub(super) fn space(path: &Path) -> Option<Space> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let frag = s.fragment_size() as u64;
    Some(Space { total: (s.blocks() as u64).saturating_mul(frag), avail: (s.blocks_available() as u64).saturating_mul(frag) })
}

pub(super) struct Reserve {
    path: PathBuf,
    size: u64,
    present: bool,
    last_try: Option<Instant>,
    released_at: Option<Instant>,
    holdoff: Duration,
    /// Times the file was written (each attempt costs flash writes): shown in the stats.
    writes: u64,
}

impl Reserve {
    pub(super) fn new(db: &Path, size: u64, holdoff: Duration) -> Reserve {
        Reserve { path: reserve_path(db), size, present: false, last_try: None, released_at: None, holdoff, writes: 0 }
    }

    pub(super) fn is_present(&self) -> bool {
        self.present
    }

    pub(super) fn size(&self) -> u64 {
        self.size
    }

    pub(super) fn writes(&self) -> u64 {
        self.writes
    }

    #[cfg(test)]
    pub(super) fn set_holdoff(&mut self, holdoff: Duration) {
        self.holdoff = holdoff;
    }

    /// Carries the write count over to a reopened store.
    pub(super) fn add_writes(&mut self, n: u64) {
        self.writes += n;
    }

    /// Makes the reserve if it is missing; `false` when the disk has no room for it. A reserve
    /// file of another size (the file system or `max_bytes` changed) is replaced.
    pub(super) fn ensure(&mut self) -> bool {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() == self.size) {
            self.present = true;
            return true;
        }
        let _ = std::fs::remove_file(&self.path);
        self.last_try = Some(Instant::now());
        self.writes += 1;
        match self.write() {
            Ok(()) => {
                self.present = true;
                tracing::info!(path = %self.path.display(), bytes = self.size, writes = self.writes, "disk reserve in place");
                true
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                self.present = false;
                tracing::warn!(path = %self.path.display(), bytes = self.size, error = %e, "no room for the disk reserve");
                false
            }
        }
    }

    /// Whether making the reserve again may be tried now (hold-off and retry period passed).
    pub(super) fn due(&self) -> bool {
        !self.present && self.released_at.is_none_or(|t| t.elapsed() >= self.holdoff) && self.last_try.is_none_or(|t| t.elapsed() >= RETRY)
    }

    /// Makes the reserve again when [`Reserve::due`] and the file system has twice its size
    /// free; `true` when it is in place.
    pub(super) fn restore_if_room(&mut self) -> bool {
        if self.present {
            return true;
        }
        if !self.due() {
            return false;
        }
        if !self.has_room() {
            return false;
        }
        self.ensure()
    }

    /// The file system has room for the reserve and as much again.
    pub(super) fn has_room(&self) -> bool {
        space(&self.path).is_some_and(|s| s.avail >= 2 * self.size)
    }

    fn write(&self) -> std::io::Result<()> {
        let mut f = File::create(&self.path)?;
        let mut chunk = vec![0u8; 64 << 10];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut left = self.size;
        while left > 0 {
            for b in chunk.chunks_exact_mut(8) {
                // xorshift64: incompressible enough, and no dependency.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes());
            }
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(chunk.get(..n).unwrap_or(&chunk))?;
            left -= n as u64;
        }
        f.sync_all()?;
        sync_dir(&self.path).map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// Deletes the reserve; `true` when there was one to free. It is not made again for the
    /// hold-off period.
    pub(super) fn release(&mut self) -> bool {
        let was = std::fs::remove_file(&self.path).is_ok();
        if was || self.present {
            self.released_at = Some(Instant::now());
        }
        self.present = false;
        self.last_try = None;
        was
    }
}
