//! Delivery per sink and dead letters (issue 15): a row leaves the buffer only when every
//! configured sink has it; a rejected row is kept in `dead_letters`; the capacity policy still
//! applies to all; the tables survive a reopen and a schema-1 file is migrated.

use super::*;
use crate::buffer::{cli, RowId, SinkBacklog, SqliteStore};

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn rowids_for(store: &mut SqliteStore, sink: Option<&str>) -> Vec<RowId> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_after_for(sink, after, 1000).unwrap();
        match page.last() {
            Some(e) => after = e.rowid,
            None => return out,
        }
        out.extend(page.iter().map(|e| e.rowid));
    }
}

#[test]
fn a_row_is_deleted_only_when_every_sink_acknowledged_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    store.set_sinks(&names(&["mqtt", "epic"])).unwrap();
    let beds = beds(2);
    let ids = store.append(&observations(&beds, 0, 10)).unwrap().rowids;

    // The MQTT sink (the first: the sink-less calls speak for it) has the first six.
    store.ack(&ids[..6]).unwrap();
    assert_eq!(store.depth(), 10, "nothing leaves while the MLLP sink lacks it");
    assert_eq!(rowids_for(&mut store, Some("mqtt")), ids[6..]);
    assert_eq!(store.read_after(0, 100).unwrap().iter().map(|e| e.rowid).collect::<Vec<_>>(), ids[6..]);
    assert_eq!(rowids_for(&mut store, Some("epic")), ids);
    let stats = store.stats().unwrap();
    assert_eq!(stats.sinks, vec![SinkBacklog { name: "mqtt".into(), backlog: 4 }, SinkBacklog { name: "epic".into(), backlog: 10 }]);

    // The MLLP sink has rows 3..8: 3..6 are now everyone's and go; 6..8 wait for MQTT.
    store.ack_for("epic", &ids[3..8]).unwrap();
    assert_eq!(store.depth(), 7);
    assert_eq!(rowids_for(&mut store, None), [&ids[..3], &ids[6..]].concat());
    assert_eq!(rowids_for(&mut store, Some("epic")), [&ids[..3], &ids[8..]].concat());
    let acks: i64 = store.conn().query_row("SELECT count(*) FROM sink_acks", [], |r| r.get(0)).unwrap();
    assert_eq!(acks, 3 + 2, "acknowledgements of deleted rows are deleted with them");

    // An unknown sink changes nothing.
    store.ack_for("nobody", &ids).unwrap();
    assert_eq!(store.depth(), 7);

    // Survives a reopen: the acknowledgements are on disk.
    drop(store);
    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    assert_eq!(report.depth, 7);
    store.set_sinks(&names(&["mqtt", "epic"])).unwrap();
    assert_eq!(rowids_for(&mut store, Some("mqtt")), ids[6..]);
    assert_eq!(rowids_for(&mut store, Some("epic")), [&ids[..3], &ids[8..]].concat());
    store.ack(&ids).unwrap();
    store.ack_for("epic", &ids).unwrap();
    assert_eq!(store.depth(), 0);
    assert!(rowids_for(&mut store, None).is_empty());
}

#[test]
fn removing_a_sink_from_the_configuration_releases_what_the_others_have() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = SqliteStore::open(&config(dir.path(), 64 << 20, WhenFull::DropOldest)).unwrap();
    store.set_sinks(&names(&["mqtt", "epic", "mirth"])).unwrap();
    let ids = store.append(&observations(&beds(1), 0, 6)).unwrap().rowids;
    store.ack(&ids[..4]).unwrap();
    store.ack_for("epic", &ids[..2]).unwrap();
    assert_eq!(store.depth(), 6);
    store.set_sinks(&names(&["mqtt", "epic"])).unwrap();
    assert_eq!(store.depth(), 4);
    assert_eq!(rowids_for(&mut store, None), ids[2..]);
    // Back to one sink: what it had goes, and acknowledgements delete at once again.
    store.set_sinks(&names(&["mqtt"])).unwrap();
    assert_eq!(rowids_for(&mut store, None), ids[4..]);
    store.ack(&ids[5..]).unwrap();
    assert_eq!(rowids_for(&mut store, None), ids[4..5]);
    let acks: i64 = store.conn().query_row("SELECT count(*) FROM sink_acks", [], |r| r.get(0)).unwrap();
    assert_eq!(acks, 0);
}

#[test]
fn a_rejected_row_is_dead_lettered_with_its_reason_and_shown_by_stats_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    store.set_sinks(&names(&["mqtt", "epic"])).unwrap();
    let beds = beds(1);
    let batch = observations(&beds, 0, 4);
    let ids = store.append(&batch).unwrap().rowids;
    let n =
        store.dead_letter("epic", &ids[..2], "GW1-17-3", "AR: MSA|AR|GW1-17-3|Unknown patient; ERR|||204^Unknown key identifier").unwrap();
    assert_eq!(n, 2);
    assert_eq!(store.dead_lettered(), 2);
    // Still owed to MQTT, no longer to the MLLP sink.
    assert_eq!(rowids_for(&mut store, Some("epic")), ids[2..]);
    assert_eq!(rowids_for(&mut store, None), ids);
    store.ack(&ids[..2]).unwrap();
    assert_eq!(store.depth(), 2);
    // Rows no longer buffered are not dead-lettered.
    assert_eq!(store.dead_letter("epic", &ids[..1], "X", "AR").unwrap(), 0);
    let stats = store.stats().unwrap();
    assert_eq!(stats.dead_lettered, 2);

    let s = cli::stats(&cfg.path).unwrap();
    assert_eq!(s.dead_lettered, 2);
    assert_eq!(s.recent_dead_letters.len(), 2);
    assert_eq!(s.recent_dead_letters[0].sink, "epic");
    assert_eq!(s.recent_dead_letters[0].control_id.as_deref(), Some("GW1-17-3"));
    assert!(s.recent_dead_letters[0].reason.contains("Unknown patient"));
    let mut out = Vec::new();
    let lines = cli::export(&cfg.path, &mut out).unwrap();
    assert_eq!(lines, 2 + 2);
    let text = String::from_utf8(out).unwrap();
    let dead: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|v| v.get("dead_letter").is_some()).collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["entry_rowid"], ids[0]);
    assert_eq!(dead[0]["reason"].as_str().unwrap(), "AR: MSA|AR|GW1-17-3|Unknown patient; ERR|||204^Unknown key identifier");
    assert_eq!(dead[0]["receipt_ms"], batch[0].reading.receipt_time.0);
    assert!(dead[0]["device"].as_str().unwrap().contains("bed1-monitor"));
    assert!(!dead[0]["reading_hex"].as_str().unwrap().is_empty());

    // The count and the table survive a reopen.
    drop(store);
    let (store, _) = SqliteStore::open(&cfg).unwrap();
    assert_eq!(store.dead_lettered(), 2);

    // With a single sink a dead letter deletes the row.
    let (mut store, _) = SqliteStore::open(&config(&dir.path().join("one"), 64 << 20, WhenFull::DropOldest)).unwrap();
    let ids = store.append(&observations(&beds, 0, 3)).unwrap().rowids;
    assert_eq!(store.dead_letter("mqtt", &ids[1..2], "C", "AE three times").unwrap(), 1);
    assert_eq!(rowids_for(&mut store, None), vec![ids[0], ids[2]]);
}

#[test]
fn a_sink_that_is_down_does_not_hold_the_buffer_beyond_its_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let max = 2 << 20;
    let (mut store, _) = SqliteStore::open(&config(dir.path(), max, WhenFull::DropOldest)).unwrap();
    store.set_sinks(&names(&["mqtt", "epic"])).unwrap();
    let beds = beds(4);
    let mut dropped = 0;
    let mut i = 0;
    // MQTT delivers everything, the MLLP receiver is down: rows stay, until the policy drops.
    while dropped == 0 {
        let out = store.append(&observations(&beds, i, 500)).unwrap();
        assert!(!out.refused_full);
        dropped += out.dropped;
        store.ack(&out.rowids).unwrap();
        i += 500;
        assert!(i < 1_000_000, "never dropped");
    }
    let stats = store.stats().unwrap();
    assert_eq!(stats.dropped_total, dropped);
    assert!(stats.bytes <= max + (1 << 20), "{stats:?}");
    assert_eq!(stats.sinks[0].backlog, 0, "{stats:?}");
    assert_eq!(stats.sinks[1].backlog, stats.depth);
    // No acknowledgement is left of a dropped row.
    let orphans: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM sink_acks WHERE NOT EXISTS (SELECT 1 FROM entries WHERE id = entry_id)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orphans, 0);
    let first = rowids_for(&mut store, Some("epic"))[0];
    assert!(first > 1, "the oldest went for every sink");
}

#[test]
fn a_schema_1_buffer_is_migrated_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 20, WhenFull::DropOldest);
    let (mut store, _) = SqliteStore::open(&cfg).unwrap();
    let ids = store.append(&observations(&beds(2), 0, 8)).unwrap().rowids;
    store
        .conn()
        .execute_batch("DROP TABLE sink_acks; DROP TABLE dead_letters; DROP TABLE wave_segments; PRAGMA user_version = 1;")
        .unwrap();
    drop(store);
    // A schema-1 file as an older medgw left it: read by `buffer stats` as it is.
    let s = cli::stats(&cfg.path).unwrap();
    assert_eq!((s.depth, s.dead_lettered, s.sinks.len()), (8, 0, 0));
    let (mut store, report) = SqliteStore::open(&cfg).unwrap();
    assert_eq!(report.depth, 8);
    let v: i64 = store.conn().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, 3, "1 → 3 in one step");
    store.set_sinks(&names(&["mqtt", "epic"])).unwrap();
    store.ack_for("epic", &ids[..2]).unwrap();
    assert_eq!(store.dead_letter("epic", &ids[2..3], "C1", "AR").unwrap(), 1);
    assert_eq!(rowids_for(&mut store, Some("epic")), ids[3..]);
    // A schema this medgw does not know is refused.
    store.conn().execute_batch("PRAGMA user_version = 9;").unwrap();
    drop(store);
    let err = SqliteStore::open(&cfg).unwrap_err();
    assert!(err.to_string().contains("schema version 9"), "{err}");
}
