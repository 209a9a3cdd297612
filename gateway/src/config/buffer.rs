//! The `[buffer]` table.

use super::model::{BufferConfig, Replay, WhenFull};
use super::reader::{Reader, Tbl};
use super::size::size_value;

impl Reader<'_> {
    pub(super) fn buffer(&mut self, top: &mut Tbl) -> Option<BufferConfig> {
        let Some(mut t) = self.table(top, "buffer") else {
            self.missing(top, "buffer", "add a [buffer] table with path = \"/var/lib/medgw/buffer.db\"");
            return None;
        };
        let path = self.path(&mut t, "path", Some("where the on-disk buffer lives, e.g. path = \"/var/lib/medgw/buffer.db\""));
        let max_bytes = match self.get(&mut t, "max_bytes") {
            None => 1 << 30,
            Some(v) => {
                let parsed = size_value(v.get_ref());
                match parsed {
                    Some(n) if n >= 1 << 20 => n,
                    Some(_) => {
                        self.err(
                            v.span(),
                            "buffer.max_bytes",
                            "is below 1 MB",
                            Some("a useful buffer holds hours of data: e.g. \"1GB\"".into()),
                        );
                        1 << 20
                    }
                    None => {
                        self.err(
                            v.span(),
                            "buffer.max_bytes",
                            "is not a size",
                            Some("bytes as an integer, or a string like \"512MB\" or \"2GB\"".into()),
                        );
                        1 << 30
                    }
                }
            }
        };
        let when_full = self.choice(
            &mut t,
            "when_full",
            &[("drop-oldest", WhenFull::DropOldest), ("stop-reading", WhenFull::StopReading)],
            WhenFull::DropOldest,
        );
        let commit_interval_ms = self.int(&mut t, "commit_interval_ms", 0..=1000, 0) as u32;
        let replay = self.choice(&mut t, "replay", &[("live-first", Replay::LiveFirst), ("ordered", Replay::Ordered)], Replay::LiveFirst);
        self.finish(t, &["path", "max_bytes", "when_full", "commit_interval_ms", "replay"]);
        Some(BufferConfig { path: path?.0, max_bytes, when_full, commit_interval_ms, replay })
    }
}
