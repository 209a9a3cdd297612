//! Waves in the session: below events and observations, QoS 0 without packet ids, the bounded
//! queue while disconnected (made-up instants, packets decoded as a broker would).

use medgw_protocols::mdc::{code, unit};
use medgw_protocols::observation::{DeviceContext, Flags, Measurement, Observation};
use medgw_protocols::{Decimal, Timestamp};
use rumqttc::mqttbytes::{v4, QoS};

use super::*;

fn entry(rowid: RowId) -> Entry {
    let ctx = DeviceContext { name: "a".into(), ..DeviceContext::default() };
    let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(rowid as i32), unit::MDC_DIM_PERCENT);
    Entry { rowid, observation: Observation::new(Arc::new(ctx), m, Timestamp(rowid), Some(Timestamp(rowid)), Flags::NONE) }
}

fn wave(i: u32) -> WaveMessage {
    WaveMessage {
        topic: format!("medgw/v1/gw/BED1/a/wave/{i}"),
        payload: Bytes::from_static(b"{}"),
        content_type: "application/json",
        stored: None,
    }
}

struct H {
    s: Session,
    stats: Arc<SinkStats>,
    now: Instant,
    /// (topic, pkid, qos) of every PUBLISH written.
    sent: Vec<(String, u16, QoS)>,
    reads: Vec<(RowId, usize)>,
}

impl H {
    fn new(capacity: usize, qos: u8) -> H {
        let stats = Arc::new(SinkStats::default());
        let now = Instant::now();
        let cfg = SessionConfig {
            protocol: MqttProtocol::V311,
            keep_alive: Duration::from_secs(30),
            format: PayloadFormat::Canonical,
            topics: Topics::new("medgw/v1", "gw"),
            gateway: "gw".into(),
            nomenclature: Arc::new(Nomenclature::builtin()),
            replay: Replay::LiveFirst,
        };
        let mut s = Session::new(cfg, stats.clone(), now);
        s.carry_waves(capacity, qos);
        H { s, stats, now, sent: Vec::new(), reads: Vec::new() }
    }

    fn run(&mut self) {
        while let Some(a) = self.s.poll(self.now) {
            match a {
                Action::Write(bytes) => {
                    let mut buf = BytesMut::from(&bytes[..]);
                    while !buf.is_empty() {
                        if let v4::Packet::Publish(p) = v4::Packet::read(&mut buf, usize::MAX).expect("a whole packet") {
                            self.sent.push((p.topic.clone(), p.pkid, p.qos));
                        }
                    }
                }
                Action::ReadBacklog { after, limit } => self.reads.push((after, limit)),
                _ => {}
            }
        }
    }

    fn connect(&mut self, limit: u16) {
        self.run();
        self.s.connected(limit, self.now);
        self.run();
    }

    fn answer_read(&mut self, entries: Vec<Entry>) {
        let (after, limit) = self.reads.pop().expect("a backlog read was asked for");
        self.s.backlog_read(after, limit, Ok(entries), self.now);
        self.run();
    }

    fn puback(&mut self, pkid: u16) {
        self.s.handle_inbound(Inbound::PubAck { pkid, delivered: true, reason: "Success".into() }, self.now);
        self.run();
    }

    fn kinds(&self) -> Vec<&str> {
        self.sent.iter().map(|(t, ..)| if t.contains("/wave/") { "wave" } else { t.rsplit('/').next().unwrap_or("") }).collect()
    }

    fn pkid_of(&self, i: usize) -> u16 {
        self.sent[i].1
    }
}

#[test]
fn qos1_waves_take_a_packet_id_only_after_events_and_observations() {
    let mut h = H::new(16, 1);
    h.connect(3);
    h.s.push_wave(wave(1), h.now);
    h.s.push_wave(wave(2), h.now);
    h.answer_read((1..=3).map(entry).collect());
    assert_eq!(h.kinds(), ["status", "obs", "obs"], "the window of 3 is full of the status and observations");
    h.puback(h.pkid_of(0));
    assert_eq!(h.kinds(), ["status", "obs", "obs", "obs"], "a freed id goes to the waiting observation, not a wave");
    h.puback(h.pkid_of(1));
    assert_eq!(h.kinds().last(), Some(&"wave"));
    assert_eq!(h.sent.last().map(|s| s.2), Some(QoS::AtLeastOnce));
    let wave_pkid = h.sent.last().unwrap().1;
    assert_eq!(h.stats.waves_published.load(Ordering::Relaxed), 0, "published once acknowledged");
    h.puback(wave_pkid);
    assert_eq!(h.stats.waves_published.load(Ordering::Relaxed), 1);
    assert_eq!(h.kinds().iter().filter(|k| **k == "wave").count(), 2);
}

#[test]
fn qos0_waves_wait_for_room_and_need_no_packet_id() {
    let mut h = H::new(256, 0);
    h.connect(1);
    h.s.push_wave(wave(1), h.now);
    h.run();
    assert_eq!(h.kinds(), ["status"], "the status fills the window: no wave meanwhile");
    h.answer_read(vec![entry(1)]);
    h.puback(h.pkid_of(0));
    assert_eq!(h.kinds(), ["status", "obs"], "the waiting observation before the wave");
    h.puback(h.pkid_of(1));
    assert_eq!(h.kinds(), ["status", "obs", "wave"]);
    assert_eq!((h.sent[2].1, h.sent[2].2), (0, QoS::AtMostOnce));
    assert_eq!(h.stats.waves_published.load(Ordering::Relaxed), 1);
    // More than one round's worth goes out without any other event.
    for i in 0..(WAVES_PER_ROUND as u32 + 10) {
        h.s.push_wave(wave(i), h.now);
    }
    h.run();
    let mut rounds = 0;
    while h.s.waves_queued() > 0 && rounds < 10 {
        assert!(h.s.next_wakeup().is_some_and(|t| t <= h.now), "leftover waves are due at once");
        h.run();
        rounds += 1;
    }
    assert_eq!(h.kinds().iter().filter(|k| **k == "wave").count(), 1 + WAVES_PER_ROUND + 10);
    assert_eq!(h.stats.waves_dropped.load(Ordering::Relaxed), 0);
}

#[test]
fn while_disconnected_the_queue_keeps_the_newest_and_counts_the_dropped() {
    let mut h = H::new(3, 0);
    h.run();
    for i in 0..5 {
        h.s.push_wave(wave(i), h.now);
    }
    assert_eq!(h.stats.waves_dropped.load(Ordering::Relaxed), 2);
    h.connect(10);
    h.answer_read(Vec::new());
    let waves: Vec<&str> = h.sent.iter().filter(|(t, ..)| t.contains("/wave/")).map(|(t, ..)| t.rsplit('/').next().unwrap()).collect();
    assert_eq!(waves, ["2", "3", "4"]);
}

/// Whether the session wrote a DISCONNECT and stopped.
fn stopped(h: &mut H) -> bool {
    let mut stop = false;
    while let Some(a) = h.s.poll(h.now) {
        stop |= a == Action::Stop;
    }
    stop || h.s.poll(h.now).is_none() && !h.s.is_connected()
}

#[test]
fn at_shutdown_queued_segments_go_out_within_the_drain_and_what_is_left_is_counted() {
    // QoS 0: the segments the devices closed as they stopped are written before DISCONNECT.
    let mut h = H::new(64, 0);
    h.connect(4);
    h.answer_read(Vec::new());
    h.puback(h.pkid_of(0));
    for i in 0..5 {
        h.s.push_wave(wave(i), h.now);
    }
    h.s.shutdown(h.now);
    h.run();
    assert_eq!(h.kinds().iter().filter(|k| **k == "wave").count(), 5, "{:?}", h.kinds());
    assert!(!h.s.is_connected(), "then it disconnects");
    assert_eq!(h.stats.waves_dropped.load(Ordering::Relaxed), 0);

    // QoS 1: they take the ids acknowledgements free; the session waits for their PUBACKs
    // within the drain and counts the segments it could not send.
    let mut h = H::new(64, 1);
    h.connect(2);
    h.answer_read(vec![entry(1)]);
    assert_eq!(h.kinds(), ["status", "obs"]);
    for i in 0..4 {
        h.s.push_wave(wave(i), h.now);
    }
    h.s.shutdown(h.now);
    h.run();
    assert_eq!(h.kinds(), ["status", "obs"], "the window is full");
    h.puback(h.pkid_of(0));
    assert_eq!(h.kinds(), ["status", "obs", "wave"], "a freed id goes to a segment while draining");
    let w = h.sent[2].1;
    h.puback(w);
    assert_eq!(h.kinds().iter().filter(|k| **k == "wave").count(), 2);
    assert!(h.s.is_connected(), "segments still queued: the drain goes on");
    h.now += DRAIN;
    assert!(stopped(&mut h));
    // One in flight and two queued when the drain ended: lost, and counted.
    assert_eq!(h.stats.waves_dropped.load(Ordering::Relaxed), 3);
    assert_eq!(h.stats.waves_published.load(Ordering::Relaxed), 1);

    // Not connected at shutdown: nothing can go out, the loss is counted.
    let mut h = H::new(64, 0);
    h.run();
    h.s.push_wave(wave(0), h.now);
    h.s.push_wave(wave(1), h.now);
    h.s.shutdown(h.now);
    assert!(stopped(&mut h));
    assert_eq!(h.stats.waves_dropped.load(Ordering::Relaxed), 2);
}

#[test]
fn durable_segments_left_at_shutdown_stay_stored_and_acknowledged_ones_are_named() {
    let mut h = H::new(64, 1);
    let acks = super::super::waves::WaveAcks::default();
    h.s.carry_durable_waves(2, acks.clone());
    h.connect(10);
    h.answer_read(Vec::new());
    let stored = |i: u32| WaveMessage { stored: Some(100 + i as i64), ..wave(i) };
    h.s.push_wave(stored(0), h.now);
    h.s.push_wave(stored(1), h.now);
    assert!(!h.s.wants_wave(), "two read ahead: the rest waits in the buffer");
    h.run();
    let w: Vec<u16> = h.sent.iter().filter(|(t, ..)| t.contains("/wave/")).map(|s| s.1).collect();
    assert_eq!(w.len(), 2);
    h.puback(w[1]);
    assert_eq!(*acks.lock().unwrap(), [101]);
    assert!(h.s.wants_wave());
    h.s.shutdown(h.now);
    h.now += DRAIN;
    assert!(stopped(&mut h));
    assert_eq!(h.stats.waves_dropped.load(Ordering::Relaxed), 0, "not lost: still in the buffer");
}

#[test]
fn after_a_reconnect_the_observation_backlog_goes_before_any_wave_segment() {
    for qos in [0, 1] {
        let mut h = H::new(64, qos);
        h.connect(10);
        for i in 0..3 {
            h.s.push_wave(wave(i), h.now);
        }
        h.run();
        // The backlog read is under way: the buffer may hold observations, so no wave yet.
        assert_eq!(h.kinds(), ["status"], "qos {qos}");
        h.answer_read((1..=4).map(entry).collect());
        let k = h.kinds();
        let first_wave = k.iter().position(|k| *k == "wave").unwrap_or(k.len());
        assert!(k[..first_wave].iter().filter(|k| **k == "obs").count() == 4, "qos {qos}: {k:?}");
    }
}
