//! The `[waves]` table: whether and how waveform segments are published (docs/waveforms.md).

use super::model::WavesConfig;
use super::reader::{Reader, Tbl};

impl Reader<'_> {
    pub(super) fn waves(&mut self, top: &mut Tbl) -> WavesConfig {
        let defaults = WavesConfig::default();
        let Some(mut t) = self.table(top, "waves") else { return defaults };
        let enabled = self.boolean(&mut t, "enabled", defaults.enabled);
        let segment_ms = self.int(&mut t, "segment_ms", 100..=60_000, defaults.segment_ms as i64) as u32;
        let qos = self.int(&mut t, "qos", 0..=1, defaults.qos as i64) as u8;
        let queue = self.int(&mut t, "queue", 16..=65_536, defaults.queue as i64) as usize;
        let durable_span = self.get(&mut t, "durable").map(|v| v.span());
        // Read through `boolean` so a wrong type is reported like any other key.
        let durable = self.boolean(&mut t, "durable", false);
        if durable {
            self.err(
                durable_span.unwrap_or_else(|| t.span.clone()),
                "waves.durable",
                "durable waves are not supported yet: segments are kept in a bounded in-memory queue",
                Some("remove the key or set durable = false (docs/waveforms.md)".into()),
            );
        }
        self.finish(t, &["enabled", "segment_ms", "qos", "queue", "durable"]);
        WavesConfig { enabled, segment_ms, qos, queue }
    }
}
