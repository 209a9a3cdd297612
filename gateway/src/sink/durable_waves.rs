//! Durable waves (`[waves] durable = true`, docs/waveforms.md): the task between the devices'
//! segments and the MQTT sink.
//!
//! ```text
//!  devices ─WaveMessage─▶ this task ─append─▶ buffer (wave_segments) ─read by cursor─┐
//!                            │                                                      ▼
//!                            └──── acks (stored ids) ◀── MQTT sink ◀─ bounded channel ┘
//! ```
//!
//! Every segment is stored first (one transaction for what arrived together) and handed to the
//! sink only from the store's order, by a cursor: the newest ones straight from memory when the
//! sink keeps up, otherwise read back from the buffer (after an outage, after a restart). The
//! channel to the sink is bounded and the sink takes from it only when its queue has room, so a
//! backlog stays on disk, not in memory, and the sink sends it only when no observation or
//! event is waiting (`sink/mqtt/session.rs`). A segment is deleted when the broker acknowledged
//! it; one sent but not acknowledged is sent again (after a reconnect from the sink's queue,
//! after a restart from the buffer).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::buffer::{BufferHandle, StoredWave};
use crate::config::PayloadFormat;
use crate::sink::mqtt::waves::{WaveAcks, WaveMessage};
use crate::sink::mqtt::SinkStats;

/// Segments kept in memory ahead of the sink at most; beyond, they are read back from disk.
const AHEAD: usize = 256;
/// Segments read from the buffer at a time.
const READ: usize = 64;
/// Segments stored in one transaction at most.
const APPEND: usize = 512;
/// Acknowledged segments are deleted this often.
const ACK_PERIOD: Duration = Duration::from_millis(100);

/// The content type a stored segment's format text stands for.
fn content_type(format: &str) -> &'static str {
    [PayloadFormat::Fhir, PayloadFormat::Hl7v2, PayloadFormat::Canonical]
        .into_iter()
        .map(|f| f.content_type())
        .find(|c| *c == format)
        .unwrap_or("application/json")
}

/// The task's ends.
pub struct DurableWaves {
    pub buffer: BufferHandle,
    /// From the devices (`source/waves.rs`); closes when every device stopped.
    pub input: mpsc::Receiver<WaveMessage>,
    /// To the MQTT sink; closes when the sink stopped.
    pub output: mpsc::Sender<WaveMessage>,
    pub acks: WaveAcks,
    pub stats: Arc<SinkStats>,
}

impl DurableWaves {
    /// Runs until the devices and the sink stopped; every segment that arrived is stored (or
    /// its loss counted and logged) before it returns, and the last acknowledgements applied.
    pub async fn run(self) {
        let DurableWaves { buffer, mut input, output, acks, stats } = self;
        // Segments stored after `cursor`, in id order, known in memory; `complete`: these are
        // all of them (otherwise the rest is read from the buffer). Unknown at start-up.
        let mut ahead: VecDeque<WaveMessage> = VecDeque::new();
        let mut complete = false;
        let mut cursor: i64 = 0;
        let mut input_open = true;
        let mut tick = tokio::time::interval(ACK_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let more = !ahead.is_empty() || !complete;
            tokio::select! {
                biased;
                m = input.recv(), if input_open => match m {
                    Some(m) => {
                        let mut batch = vec![m];
                        while batch.len() < APPEND {
                            match input.try_recv() {
                                Ok(m) => batch.push(m),
                                Err(_) => break,
                            }
                        }
                        store(&buffer, &stats, batch, &mut ahead, &mut complete).await;
                    }
                    None => input_open = false,
                },
                permit = output.reserve(), if more => match permit {
                    Ok(permit) => {
                        if ahead.is_empty() {
                            match buffer.read_waves_after(cursor, READ).await {
                                Ok(rows) => {
                                    complete = rows.len() < READ;
                                    ahead.extend(rows.into_iter().map(|w| WaveMessage {
                                        topic: w.topic,
                                        payload: w.payload,
                                        content_type: content_type(&w.format),
                                        stored: Some(w.id),
                                    }));
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "stored wave segments could not be read; retrying");
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                        }
                        if let Some(m) = ahead.pop_front() {
                            cursor = m.stored.unwrap_or(cursor);
                            permit.send(m);
                        }
                    }
                    // The sink stopped: what was not acknowledged stays stored.
                    Err(_) => {
                        if !input_open {
                            break;
                        }
                        complete = true;
                        ahead.clear();
                    }
                },
                _ = tick.tick() => delete_acked(&buffer, &acks).await,
                // Nothing to hand over and no input: wait for the sink to stop.
                _ = output.closed(), if !input_open && !more => break,
            }
        }
        delete_acked(&buffer, &acks).await;
    }
}

async fn store(buffer: &BufferHandle, stats: &SinkStats, batch: Vec<WaveMessage>, ahead: &mut VecDeque<WaveMessage>, complete: &mut bool) {
    let rows: Vec<StoredWave> = batch
        .iter()
        .map(|m| StoredWave { id: 0, topic: m.topic.clone(), format: m.content_type.to_string(), payload: m.payload.clone() })
        .collect();
    match buffer.append_waves(rows).await {
        Ok(done) => {
            stats.waves_dropped.fetch_add(done.dropped, Ordering::Relaxed);
            for (mut m, id) in batch.into_iter().zip(done.ids) {
                m.stored = Some(id);
                if *complete && ahead.len() < AHEAD {
                    ahead.push_back(m);
                } else {
                    // From here on the sink's segments come from the buffer.
                    *complete = false;
                }
            }
        }
        Err(e) => {
            let n = batch.len() as u64;
            stats.waves_dropped.fetch_add(n, Ordering::Relaxed);
            tracing::error!(error = %e, lost = n, "wave segments could not be stored: lost (counted in medgw_waves_dropped_total)");
        }
    }
}

async fn delete_acked(buffer: &BufferHandle, acks: &WaveAcks) {
    let ids = std::mem::take(&mut *acks.lock().unwrap_or_else(|p| p.into_inner()));
    if ids.is_empty() {
        return;
    }
    if let Err(e) = buffer.delete_waves(ids.clone()).await {
        // Not lost: they are sent again later (a duplicate a receiver drops by id).
        tracing::warn!(error = %e, "acknowledged wave segments not deleted; retrying");
        acks.lock().unwrap_or_else(|p| p.into_inner()).extend(ids);
    }
}
