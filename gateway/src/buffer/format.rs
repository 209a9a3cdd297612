//! The on-disk format shared by the store (`sqlite.rs`), the salvage of a damaged file
//! (`salvage.rs`) and the read-only commands (`cli.rs`): the file's application id, how a
//! reading is stored, a row that could not be used, and the times written in rows.

use medgw_protocols::observation::Reading;

use super::RowId;

/// `PRAGMA application_id` of a medgw buffer ("MGBF"): tells our file from another program's.
pub(super) const APPLICATION_ID: i64 = 0x4d47_4246;

/// Decodes a stored reading; trailing bytes count as damage.
pub(super) fn decode_reading(blob: &[u8]) -> Result<Reading, String> {
    match postcard::take_from_bytes::<Reading>(blob) {
        Ok((r, [])) => Ok(r),
        Ok((_, rest)) => Err(format!("{} trailing bytes after the reading", rest.len())),
        Err(e) => Err(format!("reading: {e}")),
    }
}

/// A row to quarantine: read from the entries (or salvaged) but not usable.
#[derive(Debug, Clone)]
pub(super) struct RawRow {
    pub id: RowId,
    pub context: Option<String>,
    pub receipt_ms: Option<i64>,
    pub reading: Option<Vec<u8>>,
}

/// Now, in milliseconds since the Unix epoch (quarantine times, rowid floors).
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
