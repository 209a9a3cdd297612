//! The session without tokio: made-up instants, packets decoded as a broker would.

use std::collections::{BTreeMap, BTreeSet};

use medgw_protocols::mdc::{code, unit};
use medgw_protocols::observation::{DeviceContext, Flags, Measurement, Observation};
use medgw_protocols::{Decimal, Timestamp};
use proptest::prelude::*;
use rumqttc::mqttbytes::v4;

use super::*;
use crate::sink::outbox::BACKLOG_BATCH;

/// Row `rowid` of device `device` at device time `time`; its value is the row id, so that a
/// broker can tell from the payload alone which rows a message carries.
fn entry(rowid: RowId, device: &str, time: i64) -> Entry {
    let ctx = DeviceContext { name: device.to_string(), ..DeviceContext::default() };
    // A different metric per row: a PCD-01 set never repeats a metric.
    let metrics = [code::MDC_PULS_OXIM_SAT_O2, code::MDC_PULS_OXIM_PULS_RATE, code::MDC_PULS_OXIM_PERF_REL, code::MDC_RESP_RATE];
    let m = Measurement::numeric(metrics[rowid as usize % metrics.len()], Decimal::from_int(rowid as i32), unit::MDC_DIM_PERCENT);
    Entry { rowid, observation: Observation::new(Arc::new(ctx), m, Timestamp(time), Some(Timestamp(time)), Flags::NONE) }
}

/// What the broker saw.
#[derive(Debug, Clone, PartialEq)]
enum Sent {
    Publish { pkid: u16, topic: String, rows: Vec<RowId> },
    Ping,
    Disconnect,
}

/// The row ids a payload carries (its values): one JSON observation, or the OBX-5 of an
/// HL7 v2 message; empty for status and event messages.
fn rows_of(topic: &str, payload: &[u8]) -> Vec<RowId> {
    if !topic.ends_with("/obs") {
        return Vec::new();
    }
    let text = std::str::from_utf8(payload).expect("UTF-8 payload");
    if text.starts_with("MSH|") {
        return text
            .split('\r')
            .filter(|seg| seg.starts_with("OBX|") && seg.split('|').nth(2) != Some(""))
            .map(|seg| seg.split('|').nth(5).expect("OBX-5").parse().expect("a row id"))
            .collect();
    }
    let json: serde_json::Value = serde_json::from_str(text).expect("JSON payload");
    let value = json["value"].to_string();
    vec![value.trim_matches('"').parse().unwrap_or_else(|_| panic!("value in {text}"))]
}

/// The driver's part, played by the test: records actions, keeps the time.
struct Harness {
    s: Session,
    stats: Arc<SinkStats>,
    now: Instant,
    sent: Vec<Sent>,
    /// The length of each write.
    writes: Vec<usize>,
    acked: Vec<Vec<RowId>>,
    reads: Vec<(RowId, usize)>,
    connects: Vec<Version>,
    closes: Vec<bool>,
    stopped: bool,
}

impl Harness {
    fn new(format: PayloadFormat, protocol: MqttProtocol) -> Harness {
        Harness::with_replay(format, protocol, Replay::LiveFirst)
    }

    fn with_replay(format: PayloadFormat, protocol: MqttProtocol, replay: Replay) -> Harness {
        let stats = Arc::new(SinkStats::default());
        let now = Instant::now();
        let cfg = SessionConfig {
            protocol,
            keep_alive: Duration::from_secs(30),
            format,
            topics: Topics::new("medgw/v1", "gw"),
            gateway: "gw".into(),
            nomenclature: Arc::new(Nomenclature::builtin()),
            replay,
        };
        Harness {
            s: Session::new(cfg, stats.clone(), now),
            stats,
            now,
            sent: Vec::new(),
            writes: Vec::new(),
            acked: Vec::new(),
            reads: Vec::new(),
            connects: Vec::new(),
            closes: Vec::new(),
            stopped: false,
        }
    }

    fn canonical() -> Harness {
        Harness::new(PayloadFormat::Canonical, MqttProtocol::V311)
    }

    /// Carries out everything the session asks for at the current time.
    fn run(&mut self) {
        while let Some(a) = self.s.poll(self.now) {
            match a {
                Action::Connect(v) => self.connects.push(v),
                Action::Write(bytes) => {
                    assert!(!self.stopped);
                    self.writes.push(bytes.len());
                    let mut buf = BytesMut::from(&bytes[..]);
                    while !buf.is_empty() {
                        match v4::Packet::read(&mut buf, usize::MAX).expect("a whole packet") {
                            v4::Packet::Publish(p) => {
                                let topic = p.topic.clone();
                                let rows = rows_of(&topic, &p.payload);
                                self.sent.push(Sent::Publish { pkid: p.pkid, topic, rows });
                            }
                            v4::Packet::PingReq => self.sent.push(Sent::Ping),
                            v4::Packet::Disconnect => self.sent.push(Sent::Disconnect),
                            other => panic!("the client sent {other:?}"),
                        }
                    }
                }
                Action::ReadBacklog { after, limit } => self.reads.push((after, limit)),
                Action::Ack(rows) => self.acked.push(rows),
                Action::Close { graceful } => self.closes.push(graceful),
                Action::Stop => self.stopped = true,
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.run();
    }

    /// Connects (answering the pending connect) with an in-flight window of `limit`.
    fn connect(&mut self, limit: u16) {
        self.run();
        assert!(!self.connects.is_empty(), "the session asked to connect");
        self.s.connected(limit, self.now);
        self.run();
    }

    /// Answers the pending backlog read with `entries` (the buffer's rows after the cursor).
    fn answer_read(&mut self, entries: Vec<Entry>) {
        let (after, limit) = self.reads.pop().expect("a backlog read was asked for");
        self.s.backlog_read(after, limit, Ok(entries), self.now);
        self.run();
    }

    fn puback(&mut self, pkid: u16, delivered: bool) {
        self.s.handle_inbound(
            Inbound::PubAck { pkid, delivered, reason: if delivered { "Success" } else { "NotAuthorized" }.into() },
            self.now,
        );
        self.run();
    }

    /// The observation publishes seen so far: (pkid, rows).
    fn publishes(&self) -> Vec<(u16, Vec<RowId>)> {
        self.sent
            .iter()
            .filter_map(|s| match s {
                Sent::Publish { pkid, rows, .. } if !rows.is_empty() => Some((*pkid, rows.clone())),
                _ => None,
            })
            .collect()
    }

    fn status_pkid(&self) -> u16 {
        self.sent
            .iter()
            .find_map(|s| match s {
                Sent::Publish { pkid, topic, .. } if topic.ends_with("/status") => Some(*pkid),
                _ => None,
            })
            .expect("status published")
    }
}

#[test]
fn connects_at_once_publishes_status_then_rows_and_deletes_only_what_the_broker_acked() {
    let mut h = Harness::canonical();
    h.run();
    assert_eq!(h.connects, vec![Version::V311]);
    assert!(h.s.next_wakeup().is_none(), "waiting for the connection, no timer");
    h.s.connected(10, h.now);
    h.run();
    assert!(h.s.is_connected());
    assert_eq!(h.reads, vec![(0, BACKLOG_BATCH)], "the buffer is read from the start");
    let status = h.status_pkid();
    h.answer_read(vec![entry(1, "a", 100), entry(2, "a", 101)]);
    let publishes = h.publishes();
    assert_eq!(publishes.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), vec![vec![1], vec![2]]);
    h.puback(publishes[1].0, true);
    h.puback(status, true);
    assert_eq!(h.acked, vec![vec![2]], "row 1 is not acknowledged yet");
    assert_eq!(h.stats.delivered.load(Ordering::Relaxed), 1);
    assert_eq!(h.stats.published.load(Ordering::Relaxed), 2);
    h.puback(publishes[1].0, true);
    assert_eq!(h.acked.len(), 1, "a duplicate PUBACK acknowledges nothing");
}

#[test]
fn the_window_holds_no_more_than_the_broker_allows() {
    let mut h = Harness::canonical();
    h.connect(3);
    h.answer_read((1..=10).map(|r| entry(r, "a", r)).collect());
    // The status and two rows fill a window of three.
    assert_eq!(h.publishes().len(), 2);
    let first = h.publishes()[0].0;
    h.puback(first, true);
    assert_eq!(h.publishes().len(), 3, "one acknowledgement makes room for one more");
    assert_eq!(h.publishes()[2].0, first, "the acknowledged id is the only one free");
}

#[test]
fn a_large_window_is_filled_in_bounded_writes_that_keep_the_order() {
    let mut h = Harness::canonical();
    h.connect(1000);
    let before = h.writes.len();
    h.answer_read((1..=900).map(|r| entry(r, "a", r)).collect());
    let rows: Vec<RowId> = h.publishes().into_iter().flat_map(|(_, r)| r).collect();
    assert_eq!(rows, (1..=900).collect::<Vec<_>>());
    let writes = &h.writes[before..];
    assert!(writes.len() > 2, "900 messages of a few hundred bytes take several writes: {writes:?}");
    // A round stops once it holds WRITE_ROUND_BYTES: at most one packet more.
    assert!(writes.iter().all(|&n| n < WRITE_ROUND_BYTES + 2048), "{writes:?}");
}

#[test]
fn messages_encoded_ahead_count_as_work_left_to_publish() {
    let mut h = Harness::canonical();
    h.connect(3);
    h.answer_read((1..=5).map(|r| entry(r, "a", r)).collect());
    assert_eq!(h.publishes().len(), 2, "the status and two rows fill the window");
    assert_eq!((h.s.outbox.queued(), h.s.encoder.ready()), (0, 3), "the other three rows are encoded ahead");
    assert!(h.s.outbox.idle(), "nothing is left in the outbox itself");
    // Still work to do: the session is busy (the driver keeps looking at the overflow flag),
    // and lower-ranked QoS 0 wave segments would not take the connection before these rows.
    assert!(h.s.busy());
}

#[test]
fn a_full_window_has_the_next_messages_encoded_ahead_sent_in_order_and_resent_after_a_loss() {
    let mut h = Harness::canonical();
    h.connect(3);
    h.answer_read((1..=10).map(|r| entry(r, "a", r)).collect());
    assert_eq!(h.publishes().len(), 2, "the status and two rows fill the window");
    // The round after the write encoded the next window's worth while waiting for PUBACKs.
    assert_eq!(h.s.encoder.ready(), 3);
    assert_eq!(h.s.outbox.queued(), 5, "rows 6..=10 still queued, 3..=5 encoded");
    assert_eq!(h.s.outbox.in_flight(), 5, "encoded rows count as handed out: a backlog read skips them");
    let (first, second) = (h.publishes()[0].0, h.publishes()[1].0);
    h.puback(first, true);
    h.puback(second, true);
    let rows: Vec<RowId> = h.publishes().into_iter().flat_map(|(_, r)| r).collect();
    assert_eq!(rows, vec![1, 2, 3, 4], "encoded messages go out first, in row order");
    assert_eq!(h.s.encoder.ready(), 3, "refilled while the window is full again");
    // A lost connection forgets what was encoded: the rows go out again, from the buffer.
    h.s.connection_lost(Ended::Lost("test".into()), h.now);
    assert_eq!(h.s.encoder.ready(), 0);
    assert_eq!(h.s.outbox.in_flight(), 0);
    h.advance(MIN_BACKOFF);
    h.s.connected(10, h.now);
    h.run();
    h.answer_read((3..=10).map(|r| entry(r, "a", r)).collect());
    let again: Vec<RowId> = h.publishes().into_iter().skip(4).flat_map(|(_, r)| r).collect();
    assert_eq!(again, (3..=10).collect::<Vec<_>>(), "nothing encoded ahead was lost or sent out of order");
}

#[test]
fn keep_alive_pings_at_half_the_interval_and_drops_a_silent_broker() {
    let mut h = Harness::canonical();
    h.connect(10);
    h.answer_read(Vec::new());
    let t0 = h.now;
    assert_eq!(h.s.next_wakeup(), Some(t0 + Duration::from_secs(15)));
    h.advance(Duration::from_secs(14));
    assert!(!h.sent.contains(&Sent::Ping));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.sent.last(), Some(&Sent::Ping));
    // Answered: the next ping half an interval after the last packet sent.
    h.s.handle_inbound(Inbound::PingResp, h.now);
    assert_eq!(h.s.next_wakeup(), Some(t0 + Duration::from_secs(30)));
    h.advance(Duration::from_secs(15));
    assert_eq!(h.sent.iter().filter(|s| **s == Sent::Ping).count(), 2);
    // Not answered: the connection is given up a keep-alive interval after the ping.
    assert_eq!(h.s.next_wakeup(), Some(h.now + Duration::from_secs(30)));
    h.advance(Duration::from_millis(29_999));
    assert!(h.closes.is_empty() && h.s.is_connected());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.closes, vec![false]);
    assert!(!h.s.is_connected());
    assert!(!h.stats.connected.load(Ordering::Relaxed));
    // A lost connection is retried soon.
    assert_eq!(h.s.next_wakeup(), Some(h.now + MIN_BACKOFF));
    h.advance(MIN_BACKOFF);
    assert_eq!(h.connects.len(), 2);
    assert_eq!(h.stats.reconnects.load(Ordering::Relaxed), 1);
}

#[test]
fn failed_connections_back_off_doubling_to_thirty_seconds_and_a_lost_one_starts_again() {
    let mut h = Harness::canonical();
    h.run();
    let mut waits = Vec::new();
    for _ in 0..10 {
        h.s.connect_failed(ConnectFailure::Other("refused".into()), h.now);
        h.run();
        let wait = h.s.next_wakeup().unwrap() - h.now;
        waits.push(wait.as_millis() as u64);
        // Nothing happens before the wait is over.
        h.advance(wait - Duration::from_millis(1));
        let n = h.connects.len();
        h.advance(Duration::from_millis(1));
        assert_eq!(h.connects.len(), n + 1);
    }
    assert_eq!(waits, vec![250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    assert_eq!(h.stats.reconnects.load(Ordering::Relaxed), 10);
    h.s.connected(10, h.now);
    h.run();
    h.s.connection_lost(Ended::Lost("broker closed the connection".into()), h.now);
    h.run();
    assert_eq!(h.s.next_wakeup(), Some(h.now + MIN_BACKOFF));
}

#[test]
fn auto_falls_back_to_mqtt_311_at_once_but_a_fixed_version_backs_off() {
    let mut h = Harness::new(PayloadFormat::Canonical, MqttProtocol::Auto);
    h.run();
    assert_eq!(h.connects, vec![Version::V5]);
    h.s.connect_failed(ConnectFailure::UnsupportedVersion, h.now);
    h.run();
    assert_eq!(h.connects, vec![Version::V5, Version::V311], "retried at once with 3.1.1");
    assert_eq!(h.s.version(), Version::V311);

    let mut h = Harness::new(PayloadFormat::Canonical, MqttProtocol::V5);
    h.run();
    h.s.connect_failed(ConnectFailure::UnsupportedVersion, h.now);
    h.run();
    assert_eq!(h.connects, vec![Version::V5]);
    assert_eq!(h.s.next_wakeup(), Some(h.now + MIN_BACKOFF));
}

#[test]
fn shutdown_waits_for_acknowledgements_in_flight_then_disconnects() {
    let mut h = Harness::canonical();
    h.connect(10);
    h.answer_read(vec![entry(1, "a", 1), entry(2, "a", 2)]);
    let p = h.publishes();
    h.s.shutdown(h.now);
    h.s.push_live(entry(3, "a", 3));
    h.run();
    assert!(!h.stopped, "rows are in flight");
    assert!(!h.s.wants_live() && !h.s.wants_aux(), "nothing new is taken while closing");
    assert_eq!(h.s.next_wakeup(), Some(h.now + DRAIN));
    h.puback(h.status_pkid(), true);
    h.puback(p[0].0, true);
    assert!(!h.stopped);
    h.advance(Duration::from_secs(1));
    h.puback(p[1].0, true);
    assert_eq!(h.acked.concat(), vec![1, 2]);
    assert_eq!(h.sent.last(), Some(&Sent::Disconnect));
    assert_eq!(h.closes, vec![true]);
    assert!(h.stopped);
    assert_eq!(h.publishes().len(), 2, "row 3 came after the shutdown: it stays buffered");
}

#[test]
fn shutdown_disconnects_after_five_seconds_without_acknowledgements() {
    let mut h = Harness::canonical();
    h.connect(10);
    h.answer_read(vec![entry(1, "a", 1)]);
    h.s.shutdown(h.now);
    h.advance(DRAIN - Duration::from_millis(1));
    assert!(!h.stopped);
    h.advance(Duration::from_millis(1));
    assert!(h.stopped);
    assert_eq!(h.sent.last(), Some(&Sent::Disconnect));
    assert!(h.acked.is_empty(), "nothing the broker did not acknowledge is deleted");
}

#[test]
fn shutdown_while_disconnected_or_connecting_stops_at_once() {
    let mut h = Harness::canonical();
    h.run();
    h.s.connect_failed(ConnectFailure::Other("refused".into()), h.now);
    h.s.shutdown(h.now);
    h.run();
    assert!(h.stopped && h.closes.is_empty() && h.sent.is_empty());

    let mut h = Harness::canonical();
    h.run();
    h.s.shutdown(h.now);
    h.run();
    assert!(h.stopped, "a shutdown during the handshake stops the sink");
}

#[test]
fn a_closed_live_channel_drains_and_disconnects_like_a_shutdown() {
    let mut h = Harness::canonical();
    h.run();
    // Closed while connecting: the next connection sends what it has, then closes.
    h.s.live_closed(h.now);
    h.s.connected(10, h.now);
    h.run();
    assert!(!h.s.wants_live());
    assert!(!h.stopped);
    h.puback(h.status_pkid(), true);
    assert!(h.stopped);
    assert_eq!(h.sent.last(), Some(&Sent::Disconnect));
}

#[test]
fn a_refused_observation_stays_buffered_and_is_offered_again_thirty_seconds_later() {
    let mut h = Harness::canonical();
    h.connect(10);
    h.answer_read(vec![entry(1, "a", 1)]);
    let (pkid, _) = h.publishes()[0].clone();
    h.puback(pkid, false);
    assert!(h.acked.is_empty());
    assert_eq!(h.stats.refused.load(Ordering::Relaxed), 1);
    h.s.handle_inbound(Inbound::PingResp, h.now);
    h.advance(REFUSED_RETRY - Duration::from_millis(1));
    assert!(h.reads.is_empty());
    h.s.handle_inbound(Inbound::PingResp, h.now);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.reads, vec![(0, BACKLOG_BATCH)], "the buffer is read again from the start");
    h.answer_read(vec![entry(1, "a", 1)]);
    assert_eq!(h.publishes().len(), 2);
    assert_eq!(h.publishes()[1].1, vec![1]);
}

#[test]
fn live_rows_go_out_while_connected_and_are_left_to_the_backlog_while_not() {
    let mut h = Harness::canonical();
    h.run();
    assert!(!h.s.wants_live(), "connecting: the driver is in the handshake");
    h.s.connect_failed(ConnectFailure::Other("refused".into()), h.now);
    h.run();
    assert!(h.s.wants_live(), "while waiting, live rows are taken and dropped");
    h.s.push_live(entry(5, "a", 5));
    h.advance(MIN_BACKOFF);
    h.s.connected(10, h.now);
    h.run();
    assert!(h.publishes().is_empty(), "the row was not kept in memory while disconnected");
    // The backlog finds it in the buffer; a live row goes out from memory.
    h.answer_read(vec![entry(5, "a", 5)]);
    h.s.push_live(entry(6, "a", 6));
    h.run();
    assert_eq!(h.publishes().iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), vec![vec![5], vec![6]]);
    assert!(h.reads.is_empty(), "the buffer held nothing more");
}

#[test]
fn a_grouped_message_is_acknowledged_as_one_set() {
    let mut h = Harness::new(PayloadFormat::Hl7v2, MqttProtocol::V311);
    h.s.group_rows(SetLimits::default());
    h.connect(10);
    h.answer_read(vec![entry(1, "a", 100), entry(2, "a", 100), entry(3, "a", 100), entry(4, "a", 200), entry(5, "b", 200)]);
    let p = h.publishes();
    assert_eq!(p.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), vec![vec![1, 2, 3], vec![4], vec![5]]);
    assert_eq!(h.stats.published.load(Ordering::Relaxed), 5);
    h.puback(p[0].0, true);
    assert_eq!(h.acked, vec![vec![1, 2, 3]], "one PUBACK deletes every row of its message");
    assert_eq!(h.stats.delivered.load(Ordering::Relaxed), 3);
    h.puback(p[1].0, false);
    assert_eq!(h.acked.len(), 1);
}

#[test]
fn a_lost_grouped_message_is_offered_again_as_a_whole() {
    let mut h = Harness::new(PayloadFormat::Hl7v2, MqttProtocol::V311);
    h.s.group_rows(SetLimits::default());
    h.connect(10);
    let rows = || vec![entry(1, "a", 100), entry(2, "a", 100), entry(3, "b", 100)];
    h.answer_read(rows());
    let before = h.publishes();
    assert_eq!(before.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), vec![vec![1, 2], vec![3]]);
    h.puback(before[1].0, true);
    h.s.connection_lost(Ended::Lost("broker closed the connection".into()), h.now);
    h.run();
    assert_eq!(h.acked, vec![vec![3]]);
    h.advance(MIN_BACKOFF);
    h.s.connected(10, h.now);
    h.run();
    // The buffer has not deleted row 3 yet; the unacknowledged set goes out again, whole.
    h.answer_read(rows());
    let after: Vec<Vec<RowId>> = h.publishes()[before.len()..].iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(after, vec![vec![1, 2]]);
}

#[test]
fn json_formats_publish_one_row_per_message_even_with_a_grouping_rule() {
    let mut h = Harness::canonical();
    h.s.group_rows(SetLimits::default());
    h.connect(10);
    h.answer_read(vec![entry(1, "a", 100), entry(2, "a", 100)]);
    assert_eq!(h.publishes().iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), vec![vec![1], vec![2]]);
}

#[test]
fn a_buffer_error_ends_the_connection_and_it_is_retried() {
    let mut h = Harness::canonical();
    h.connect(10);
    let (after, limit) = h.reads.pop().unwrap();
    h.s.backlog_read(after, limit, Err(BufferError::Closed), h.now);
    h.run();
    assert_eq!(h.closes, vec![false]);
    assert_eq!(h.s.next_wakeup(), Some(h.now + MIN_BACKOFF));
    // A read answered after the connection ended is ignored.
    h.s.backlog_read(after, limit, Ok(vec![entry(1, "a", 1)]), h.now);
    h.run();
    assert!(h.publishes().is_empty());
}

/// What happens next in the property test.
#[derive(Debug, Clone)]
enum Step {
    /// Sources commit `n` rows of one device at one time (they may form one set).
    Commit {
        n: u8,
        device: u8,
    },
    /// The broker acknowledges (or, MQTT 5, refuses) the oldest or a later unanswered message.
    Answer {
        pick: u8,
        delivered: bool,
    },
    /// The buffer answers the pending backlog read.
    Read,
    /// The buffer deletes the rows acknowledged so far.
    ApplyAcks,
    ConnectionLost,
    /// Time passes (pings, timeouts, retries).
    Wait {
        ms: u32,
    },
    /// The broker answers a ping.
    PingResp,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1u8..4, 0u8..3).prop_map(|(n, device)| Step::Commit { n, device }),
        4 => (any::<u8>(), prop::bool::weighted(0.9)).prop_map(|(pick, delivered)| Step::Answer { pick, delivered }),
        2 => Just(Step::Read),
        1 => Just(Step::ApplyAcks),
        1 => Just(Step::ConnectionLost),
        1 => (0u32..40_000).prop_map(|ms| Step::Wait { ms }),
        1 => Just(Step::PingResp),
    ]
}

/// A buffer and a broker around a session, checking on every acknowledgement.
struct World {
    h: Harness,
    /// The buffer: committed rows not yet deleted.
    buffer: BTreeMap<RowId, Entry>,
    next_row: RowId,
    time: i64,
    /// Acknowledged by the session, not yet deleted by the buffer.
    to_delete: Vec<RowId>,
    /// Every row ever handed to the buffer for deletion.
    deleted: BTreeSet<RowId>,
    /// Rows the broker acknowledged, per the packets it saw.
    broker_acked: BTreeSet<RowId>,
    /// Unanswered publishes on this connection: pkid → rows.
    unanswered: Vec<(u16, Vec<RowId>)>,
    seen: usize,
    acked_seen: usize,
    closes_seen: usize,
    /// The broker's Receive Maximum.
    limit: u16,
}

impl World {
    fn new(replay: Replay, limit: u16) -> World {
        let mut h = Harness::with_replay(PayloadFormat::Hl7v2, MqttProtocol::V311, replay);
        h.s.group_rows(SetLimits::default());
        World {
            h,
            buffer: BTreeMap::new(),
            next_row: 1,
            time: 1_000,
            to_delete: Vec::new(),
            deleted: BTreeSet::new(),
            broker_acked: BTreeSet::new(),
            unanswered: Vec::new(),
            seen: 0,
            acked_seen: 0,
            closes_seen: 0,
            limit,
        }
    }

    /// Takes in what the session did since the last look, and checks it.
    fn observe(&mut self) {
        let new: Vec<Sent> = self.h.sent[self.seen..].to_vec();
        for s in new {
            if let Sent::Publish { pkid, topic, rows } = s {
                assert!(!self.unanswered.iter().any(|(p, _)| *p == pkid), "packet id {pkid} reused while unanswered");
                if rows.is_empty() {
                    // Status: the broker acknowledges it right away.
                    assert!(topic.ends_with("/status"));
                    self.h.s.handle_inbound(Inbound::PubAck { pkid, delivered: true, reason: String::new() }, self.h.now);
                } else {
                    for r in &rows {
                        assert!(self.buffer.contains_key(r), "row {r} published but not in the buffer");
                        assert!(!self.deleted.contains(r), "row {r} published after it was acknowledged");
                    }
                    self.unanswered.push((pkid, rows));
                }
            }
        }
        self.seen = self.h.sent.len();
        let new: Vec<Vec<RowId>> = self.h.acked[self.acked_seen..].to_vec();
        for rows in new {
            for r in rows {
                assert!(self.broker_acked.contains(&r), "row {r} acknowledged to the buffer, never by the broker");
                assert!(self.deleted.insert(r), "row {r} acknowledged twice");
                self.to_delete.push(r);
            }
        }
        self.acked_seen = self.h.acked.len();
        if self.h.closes.len() > self.closes_seen {
            // The connection ended: its packet ids mean nothing any more.
            self.closes_seen = self.h.closes.len();
            self.unanswered.clear();
        }
    }

    fn run(&mut self) {
        loop {
            self.h.run();
            let before = (self.h.sent.len(), self.h.acked.len());
            self.observe();
            self.h.run();
            if (self.h.sent.len(), self.h.acked.len()) == before {
                break;
            }
        }
        // The driver connects whenever asked (a read asked on the old connection is dropped).
        if !self.h.connects.is_empty() && !self.h.s.is_connected() {
            self.h.connects.clear();
            self.h.reads.clear();
            self.h.s.connected(self.limit, self.h.now);
            self.run();
        }
    }

    fn apply(&mut self, step: Step) {
        match step {
            Step::Commit { n, device } => {
                self.time += 1;
                for _ in 0..n {
                    let e = entry(self.next_row, &format!("d{device}"), self.time);
                    self.next_row += 1;
                    self.buffer.insert(e.rowid, e.clone());
                    if self.h.s.wants_live() {
                        self.h.s.push_live(e);
                    } else {
                        self.h.s.live_overflowed();
                    }
                }
            }
            Step::Answer { pick, delivered } => {
                if !self.unanswered.is_empty() {
                    let (pkid, rows) = self.unanswered.remove(pick as usize % self.unanswered.len());
                    if delivered {
                        self.broker_acked.extend(rows);
                    }
                    self.h.s.handle_inbound(Inbound::PubAck { pkid, delivered, reason: String::new() }, self.h.now);
                }
            }
            Step::Read => {
                if let Some((after, limit)) = self.h.reads.pop() {
                    let rows: Vec<Entry> = self.buffer.range(after + 1..).take(limit).map(|(_, e)| e.clone()).collect();
                    self.h.s.backlog_read(after, limit, Ok(rows), self.h.now);
                }
            }
            Step::ApplyAcks => {
                for r in self.to_delete.drain(..) {
                    self.buffer.remove(&r);
                }
            }
            Step::ConnectionLost => self.h.s.connection_lost(Ended::Lost("test".into()), self.h.now),
            Step::Wait { ms } => self.h.now += Duration::from_millis(ms.into()),
            Step::PingResp => self.h.s.handle_inbound(Inbound::PingResp, self.h.now),
        }
        self.run();
    }

    /// Let the broker and buffer answer everything until nothing is left.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if self.buffer.keys().all(|r| self.deleted.contains(r)) && self.unanswered.is_empty() {
                return;
            }
            if let Some((pkid, rows)) = self.unanswered.first().cloned() {
                self.unanswered.remove(0);
                self.broker_acked.extend(rows);
                self.h.s.handle_inbound(Inbound::PubAck { pkid, delivered: true, reason: String::new() }, self.h.now);
                self.run();
            } else if !self.h.reads.is_empty() {
                self.apply(Step::Read);
            } else {
                self.apply(Step::PingResp);
                self.apply(Step::Wait { ms: 1_000 });
            }
        }
        let left: Vec<RowId> = self.buffer.keys().filter(|r| !self.deleted.contains(r)).copied().collect();
        panic!("rows never acknowledged: {left:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the broker, the buffer and the clock do: a row is deleted only after the broker
    /// acknowledged a message carrying it, at most once; every committed row is eventually
    /// deleted once the broker answers; no packet id is reused while unanswered.
    #[test]
    fn every_row_is_acknowledged_exactly_once_and_only_when_the_broker_did(
        steps in prop::collection::vec(step(), 1..120),
        ordered in any::<bool>(),
        limit in 1u16..6,
    ) {
        let mut w = World::new(if ordered { Replay::Ordered } else { Replay::LiveFirst }, limit);
        w.run();
        for s in steps {
            w.apply(s);
        }
        w.settle();
    }
}

/// Issue 16: an alarm raised while a backlog drains goes out in the next free slot of the
/// window, ahead of the rows still queued.
#[test]
fn an_alarm_during_a_backlog_drain_takes_the_next_free_slot() {
    let mut h = Harness::canonical();
    h.connect(3);
    h.answer_read((1..=50).map(|r| entry(r, "a", r)).collect());
    assert_eq!(h.publishes().len(), 2, "the status and two rows fill the window");
    let alarm = "medgw/v1/gw/BED1/spo2/alarm";
    h.s.push_aux(AuxMessage { topic: alarm.into(), payload: Bytes::from_static(b"{\"phase\":\"start\"}"), retain: false, sticky: false });
    h.run();
    assert!(!h.sent.iter().any(|s| matches!(s, Sent::Publish { topic, .. } if topic == alarm)), "no room yet");
    let first = h.publishes()[0].0;
    h.puback(first, true);
    match h.sent.last() {
        Some(Sent::Publish { topic, rows, .. }) => assert_eq!((topic.as_str(), rows.len()), (alarm, 0), "the alarm, not row 3"),
        other => panic!("{other:?}"),
    }
    let second = h.publishes()[1].0;
    h.puback(second, true);
    assert_eq!(h.publishes().last().map(|(_, r)| r.clone()), Some(vec![3]), "then the backlog goes on");
}
