//! The `[waves]` table: whether and how waveform segments are published (docs/waveforms.md).

use super::model::WavesConfig;
use super::reader::{Reader, Tbl};
use super::size::size_value;

impl Reader<'_> {
    pub(super) fn waves(&mut self, top: &mut Tbl) -> WavesConfig {
        let defaults = WavesConfig::default();
        let Some(mut t) = self.table(top, "waves") else { return defaults };
        let enabled = self.boolean(&mut t, "enabled", defaults.enabled);
        let segment_ms = self.int(&mut t, "segment_ms", 100..=60_000, defaults.segment_ms as i64) as u32;
        let qos_span = self.get(&mut t, "qos").map(|v| v.span());
        let qos = self.int(&mut t, "qos", 0..=1, defaults.qos as i64) as u8;
        let queue = self.int(&mut t, "queue", 16..=65_536, defaults.queue as i64) as usize;
        let durable = self.boolean(&mut t, "durable", false);
        let max_bytes = match self.get(&mut t, "max_bytes") {
            None => defaults.max_bytes,
            Some(v) => {
                let parsed = size_value(v.get_ref());
                match parsed {
                    Some(n) if n >= 1 << 20 => n,
                    _ => {
                        self.err(v.span(), "waves.max_bytes", "is not a size of at least 1 MB", Some("e.g. max_bytes = \"64MB\"".into()));
                        defaults.max_bytes
                    }
                }
            }
        };
        // A durable segment is deleted on the broker's PUBACK, which only QoS 1 has: QoS 0
        // would mean deleting what the broker may never have had.
        let qos = match (durable, qos_span) {
            (true, Some(span)) if qos == 0 => {
                self.err(
                    span,
                    "waves.qos",
                    "durable waves need QoS 1: a segment is deleted from the buffer only on the broker's PUBACK",
                    Some("remove qos (durable implies 1) or set qos = 1".into()),
                );
                0
            }
            (true, _) => 1,
            (false, _) => qos,
        };
        self.finish(t, &["enabled", "segment_ms", "qos", "queue", "durable", "max_bytes"]);
        WavesConfig { enabled, segment_ms, qos, queue, durable, max_bytes }
    }
}
