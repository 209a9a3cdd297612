//! TEMPORARY in-memory buffer handle with the interface of the durable one (replaced by the
//! SQLite store). Not durable: never use it for patient data.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use medgw_protocols::observation::Observation;

use super::{AppendOutcome, BufferError, BufferStats, Entry, RowId};

#[derive(Clone, Default)]
pub struct BufferHandle {
    inner: Arc<Mutex<(RowId, BTreeMap<RowId, Observation>)>>,
}

impl BufferHandle {
    pub fn memory() -> BufferHandle {
        BufferHandle::default()
    }

    pub async fn append(&self, batch: Vec<Observation>) -> Result<AppendOutcome, BufferError> {
        let mut g = self.inner.lock().map_err(|_| BufferError::Closed)?;
        let mut rowids = Vec::with_capacity(batch.len());
        for o in batch {
            g.0 += 1;
            let id = g.0;
            g.1.insert(id, o);
            rowids.push(id);
        }
        Ok(AppendOutcome { rowids, ..Default::default() })
    }

    pub async fn read_after(&self, after: RowId, limit: usize) -> Result<Vec<Entry>, BufferError> {
        let g = self.inner.lock().map_err(|_| BufferError::Closed)?;
        Ok(g.1.range(after + 1..).take(limit).map(|(r, o)| Entry { rowid: *r, observation: o.clone() }).collect())
    }

    pub fn ack(&self, rowids: Vec<RowId>) {
        if let Ok(mut g) = self.inner.lock() {
            for r in rowids {
                g.1.remove(&r);
            }
        }
    }

    pub async fn stats(&self) -> Result<BufferStats, BufferError> {
        let g = self.inner.lock().map_err(|_| BufferError::Closed)?;
        Ok(BufferStats { depth: g.1.len() as u64, ..Default::default() })
    }

    pub async fn close(self) {}
}
