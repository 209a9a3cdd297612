//! The disk reserve: a file of incompressible bytes beside the buffer, given up when the OS
//! reports the disk full.
//!
//! On a full disk SQLite cannot move out of trouble by itself: a checkpoint may need to grow
//! the database file, and deleting old entries needs new WAL frames, so both fail with
//! SQLITE_FULL and the buffer would be stuck (not even acknowledgements could be applied).
//! Deleting the reserve frees exactly the room those two need. Once old entries are gone and
//! their pages are given back, the reserve is made again. (CockroachDB's "emergency ballast"
//! file is the same idea.)
//!
//! The bytes are pseudo-random rather than zeros so that a compressing or de-duplicating file
//! system (ZFS, btrfs with compression) really allocates them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::sqlite::{suffixed, sync_dir};

/// After a failed attempt, the reserve is not tried again for this long.
const RETRY: Duration = Duration::from_secs(10);

pub(super) struct Reserve {
    path: PathBuf,
    size: u64,
    present: bool,
    last_try: Option<Instant>,
}

impl Reserve {
    pub(super) fn new(db: &Path, size: u64) -> Reserve {
        Reserve { path: suffixed(db, ".reserve"), size, present: false, last_try: None }
    }

    pub(super) fn path_for(db: &Path) -> PathBuf {
        suffixed(db, ".reserve")
    }

    pub(super) fn is_present(&self) -> bool {
        self.present
    }

    /// Makes the reserve if it is missing; `false` when the disk has no room for it.
    pub(super) fn ensure(&mut self) -> bool {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() == self.size) {
            self.present = true;
            return true;
        }
        self.last_try = Some(Instant::now());
        match self.write() {
            Ok(()) => {
                self.present = true;
                tracing::info!(path = %self.path.display(), bytes = self.size, "disk reserve in place");
                true
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                self.present = false;
                tracing::warn!(path = %self.path.display(), bytes = self.size, error = %e, "no room for the disk reserve: a full disk may stall the buffer");
                false
            }
        }
    }

    /// Like [`Reserve::ensure`], but at most once per retry period after a failure.
    pub(super) fn ensure_later(&mut self) -> bool {
        if self.present {
            return true;
        }
        if self.last_try.is_some_and(|t| t.elapsed() < RETRY) {
            return false;
        }
        self.ensure()
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

    /// Deletes the reserve; `true` when there was one to free.
    pub(super) fn release(&mut self) -> bool {
        let was = std::fs::remove_file(&self.path).is_ok();
        self.present = false;
        self.last_try = None;
        was
    }
}
