//! The MLLP delivery session (`hl7::delivery`): acknowledgement rules of HL7 v2 original and
//! enhanced mode, time-outs and lost connections, and, for any sequence of ACKs, time-outs and
//! disconnects, that every message ends exactly once as acknowledged or dead-lettered.

use medgw_protocols::encode::mllp;
use medgw_protocols::hl7::delivery::{AckKind, AckMode, Action, CloseReason, DeliveryConfig, DeliverySession, Ignored, OfferError};
use medgw_protocols::time::Timestamp;
use proptest::prelude::*;

fn message(id: &str, msh16: &str) -> Vec<u8> {
    format!("MSH|^~\\&|MEDGW^0012345678ABCDEF^EUI-64|HOSP|||20261125101500+0000||ORU^R01^ORU_R01|{id}|P|2.6|||NE|{msh16}||UNICODE UTF-8\rPID|||BED1^^^HOSP^ANON\rOBR|1||{id}\r")
        .into_bytes()
}

fn ack(code: &str, id: &str, extra: &str) -> Vec<u8> {
    mllp::frame(format!("MSH|^~\\&|EHR|HOSP|MEDGW|ICU|20261125101501+0000||ACK^R01^ACK|ACK{id}|P|2.6\rMSA|{code}|{id}\r{extra}").as_bytes())
}

fn config() -> DeliveryConfig {
    DeliveryConfig {
        ack_timeout_ms: 10_000,
        retry_backoff_min_ms: 1_000,
        retry_backoff_max_ms: 8_000,
        ae_retries: 2,
        ..DeliveryConfig::default()
    }
}

type Session = DeliverySession<u32>;

/// Offers, connects and returns the session with the first writes done.
fn connected(config: DeliveryConfig, ids: &[&str]) -> (Session, Vec<Action<u32>>) {
    let mut s = Session::new(config);
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        s.offer(message(id, "AL"), i as u32, Timestamp(0), &mut out).unwrap();
    }
    assert_eq!(out, [Action::Connect], "asks for a connection once there is something to send");
    out.clear();
    s.connected(Timestamp(0), &mut out);
    (s, out)
}

fn framed(id: &str) -> Action<u32> {
    Action::Write(mllp::frame(&message(id, "AL")))
}

#[test]
fn aa_acknowledges_and_with_one_in_flight_the_next_follows_in_order() {
    let (mut s, out) = connected(config(), &["M1", "M2"]);
    assert_eq!(out, [framed("M1")], "one in flight: M2 waits");
    assert_eq!((s.in_flight(), s.queued()), (1, 1));
    let mut out = Vec::new();
    s.handle_inbound(&ack("AA", "M1", ""), Timestamp(5), &mut out);
    assert_eq!(out, [Action::Acked { tag: 0, control_id: "M1".into(), sends: 1 }, framed("M2")]);
    out.clear();
    // An ACK split across reads is put together by the deframer.
    let a = ack("AA", "M2", "");
    s.handle_inbound(&a[..7], Timestamp(6), &mut out);
    assert!(out.is_empty());
    s.handle_inbound(&a[7..], Timestamp(7), &mut out);
    assert_eq!(out, [Action::Acked { tag: 1, control_id: "M2".into(), sends: 1 }]);
    assert!(s.is_idle());
    assert_eq!(s.next_wakeup(), None);
}

#[test]
fn ar_dead_letters_at_once_with_the_acks_reason() {
    let (mut s, _) = connected(config(), &["M1"]);
    let mut out = Vec::new();
    s.handle_inbound(
        &ack("AR", "M1", "ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||Patient not registered\r"),
        Timestamp(5),
        &mut out,
    );
    let [Action::DeadLettered(d)] = &out[..] else { panic!("{out:?}") };
    assert_eq!((d.tag, d.control_id.as_str(), d.kind, d.sends), (0, "M1", AckKind::AR, 1));
    assert_eq!(d.reason, "AR: 204 Unknown key identifier at PID-3: Patient not registered");
    assert!(s.is_idle());
}

#[test]
fn ae_is_retried_after_a_growing_back_off_then_dead_lettered() {
    let (mut s, _) = connected(config(), &["M1"]);
    let mut out = Vec::new();
    s.handle_inbound(&ack("AE", "M1", "ERR||OBX^1^5|207^Application internal error^HL70357|E\r"), Timestamp(100), &mut out);
    assert_eq!(
        out,
        [Action::RetryScheduled {
            control_id: "M1".into(),
            retry: 1,
            at: Timestamp(1_100),
            reason: "AE: 207 Application internal error at OBX-5".into()
        }]
    );
    assert_eq!(s.next_wakeup(), Some(Timestamp(1_100)));
    out.clear();
    s.poll(Timestamp(1_099), &mut out);
    assert!(out.is_empty(), "not before the back-off: {out:?}");
    s.poll(Timestamp(1_100), &mut out);
    assert_eq!(out, [framed("M1")], "the same bytes again");
    out.clear();
    s.handle_inbound(&ack("AE", "M1", ""), Timestamp(1_200), &mut out);
    assert!(matches!(&out[..], [Action::RetryScheduled { retry: 2, at: Timestamp(3_200), .. }]), "{out:?}");
    out.clear();
    s.poll(Timestamp(3_200), &mut out);
    assert_eq!(out, [framed("M1")]);
    out.clear();
    s.handle_inbound(&ack("AE", "M1", ""), Timestamp(3_300), &mut out);
    let [Action::DeadLettered(d)] = &out[..] else { panic!("{out:?}") };
    assert_eq!((d.kind, d.sends, d.reason.as_str()), (AckKind::AE, 3, "AE (no reason given)"));
}

#[test]
fn no_ack_within_the_timeout_closes_and_resends_the_same_control_id() {
    let (mut s, out) = connected(config(), &["M1", "M2"]);
    assert_eq!(out, [framed("M1")]);
    assert_eq!(s.next_wakeup(), Some(Timestamp(10_000)));
    let mut out = Vec::new();
    s.poll(Timestamp(9_999), &mut out);
    assert!(out.is_empty());
    s.poll(Timestamp(10_000), &mut out);
    assert_eq!(out, [Action::Close(CloseReason::AckTimeout { control_id: "M1".into() })]);
    assert!(!s.is_connected());
    assert_eq!(s.next_wakeup(), Some(Timestamp(11_000)), "reconnect after the back-off");
    out.clear();
    // An ACK read after the close belongs to the old connection: not acted on.
    s.handle_inbound(&ack("AA", "M1", ""), Timestamp(10_500), &mut out);
    assert!(out.is_empty());
    s.poll(Timestamp(11_000), &mut out);
    assert_eq!(out, [Action::Connect]);
    out.clear();
    s.connect_failed(Timestamp(11_010), &mut out);
    assert!(out.is_empty());
    assert_eq!(s.next_wakeup(), Some(Timestamp(13_010)), "the back-off doubles");
    s.poll(Timestamp(13_010), &mut out);
    assert_eq!(out, [Action::Connect]);
    out.clear();
    s.connected(Timestamp(13_020), &mut out);
    assert_eq!(out, [framed("M1")], "M1 again, unchanged, before M2");
    out.clear();
    s.handle_inbound(&ack("AA", "M1", ""), Timestamp(13_030), &mut out);
    assert_eq!(out, [Action::Acked { tag: 0, control_id: "M1".into(), sends: 2 }, framed("M2")]);
}

#[test]
fn an_ack_for_another_message_is_ignored() {
    let (mut s, _) = connected(config(), &["M1"]);
    let mut out = Vec::new();
    s.handle_inbound(&ack("AA", "M0", ""), Timestamp(5), &mut out);
    s.handle_inbound(b"\x0bnot hl7\x1c\r", Timestamp(5), &mut out);
    assert_eq!(out[0], Action::Ignored(Ignored::UnknownControlId { control_id: "M0".into(), kind: AckKind::AA }));
    assert!(matches!(out[1], Action::Ignored(Ignored::Unreadable { .. })), "{out:?}");
    assert_eq!(s.in_flight(), 1, "M1 still awaits its own ACK");
}

#[test]
fn a_lost_connection_resends_everything_in_flight_in_order() {
    let (mut s, out) = connected(DeliveryConfig { max_in_flight: 3, ..config() }, &["M1", "M2", "M3", "M4"]);
    assert_eq!(out, [framed("M1"), framed("M2"), framed("M3")]);
    let mut out = Vec::new();
    s.handle_inbound(&ack("AA", "M2", ""), Timestamp(5), &mut out);
    assert_eq!(out, [Action::Acked { tag: 1, control_id: "M2".into(), sends: 1 }, framed("M4")], "out of order with 3 in flight");
    out.clear();
    s.disconnected(Timestamp(6), &mut out);
    s.disconnected(Timestamp(6), &mut out);
    assert!(out.is_empty());
    s.poll(Timestamp(1_006), &mut out);
    assert_eq!(out, [Action::Connect]);
    out.clear();
    s.connected(Timestamp(1_010), &mut out);
    assert_eq!(out, [framed("M1"), framed("M3"), framed("M4")]);
}

#[test]
fn enhanced_mode_waits_for_the_application_ack_after_the_commit_accept() {
    let enhanced = DeliveryConfig { ack_mode: AckMode::Enhanced, ..config() };
    let (mut s, _) = connected(enhanced.clone(), &["M1"]);
    let mut out = Vec::new();
    s.handle_inbound(&ack("CA", "M1", ""), Timestamp(5), &mut out);
    assert!(out.is_empty(), "MSH-16 AL: the application ACK is still due");
    assert_eq!(s.next_wakeup(), Some(Timestamp(10_005)), "a new timeout for the application ACK");
    // The application ACK asks for a commit ACK (its MSH-15 AL): medgw answers CA.
    let app = mllp::frame(b"MSH|^~\\&|EHR|HOSP|MEDGW|ICU|20261125101502+0000||ACK^R01^ACK|APP1|P|2.6|||AL|NE\rMSA|AA|M1\r");
    s.handle_inbound(&app, Timestamp(1_000_000), &mut out);
    let Action::Write(commit) = &out[0] else { panic!("{out:?}") };
    let commit = String::from_utf8(commit[1..commit.len() - 2].to_vec()).unwrap();
    assert!(commit.starts_with("MSH|^~\\&|MEDGW|ICU|EHR|HOSP|19700101001640+0000||ACK|CA1|P|2.6\rMSA|CA|APP1\r"), "{commit:?}");
    assert_eq!(out[1], Action::Acked { tag: 0, control_id: "M1".into(), sends: 1 });

    // CA acknowledges a message that wants no application ACK; CE retries; CR dead-letters.
    let mut s = Session::new(enhanced.clone());
    out.clear();
    s.offer(message("N1", "NE"), 7, Timestamp(0), &mut out).unwrap();
    s.connected(Timestamp(0), &mut out);
    out.clear();
    s.handle_inbound(&ack("CA", "N1", ""), Timestamp(1), &mut out);
    assert_eq!(out, [Action::Acked { tag: 7, control_id: "N1".into(), sends: 1 }]);
    let (mut s, _) = connected(enhanced, &["R1"]);
    out.clear();
    s.handle_inbound(&ack("CE", "R1", ""), Timestamp(1), &mut out);
    assert!(matches!(&out[..], [Action::RetryScheduled { retry: 1, .. }]), "{out:?}");
    out.clear();
    s.poll(Timestamp(1_001), &mut out);
    s.handle_inbound(&ack("CR", "R1", "MSA|CR|R1|Unsupported version\r"), Timestamp(1_002), &mut out);
    assert!(matches!(&out[..], [Action::Write(_), Action::DeadLettered(d)] if d.kind == AckKind::CR), "{out:?}");
}

#[test]
fn messages_that_an_ack_could_not_name_are_refused_when_offered() {
    let mut s = Session::new(config());
    let mut out = Vec::new();
    s.offer(message("M1", "AL"), 0, Timestamp(0), &mut out).unwrap();
    assert_eq!(s.offer(message("M1", "AL"), 1, Timestamp(0), &mut out), Err(OfferError::DuplicateControlId("M1".into())));
    assert_eq!(s.offer(message("", "AL"), 1, Timestamp(0), &mut out), Err(OfferError::NoControlId));
    assert_eq!(s.offer(b"MSH|^~\\&|A\x1c|B\r".to_vec(), 1, Timestamp(0), &mut out), Err(OfferError::FramingByte));
    assert!(matches!(s.offer(b"PID|1\r".to_vec(), 1, Timestamp(0), &mut out), Err(OfferError::NotHl7(_))));
    assert_eq!(s.queued() + s.in_flight(), 1);
}

/// What the receiver or the network does next.
#[derive(Debug, Clone)]
enum Step {
    Offer,
    /// Answer the n-th message written on this connection and not yet answered.
    Answer(usize, &'static str),
    /// An ACK naming a message never offered.
    Stray,
    Advance(u64),
    Disconnect,
    ConnectFails,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Offer),
        6 => (0usize..4, prop::sample::select(vec!["AA", "AE", "AR", "CA", "CE", "CR"])).prop_map(|(n, c)| Step::Answer(n, c)),
        1 => Just(Step::Stray),
        3 => (0u64..15_000).prop_map(Step::Advance),
        1 => Just(Step::Disconnect),
        1 => Just(Step::ConnectFails),
    ]
}

/// Drives a session like the gateway's task would, with a scripted receiver.
struct Harness {
    s: Session,
    now: Timestamp,
    offered: Vec<String>,
    /// Control ids written on the current connection, not yet answered.
    unanswered: Vec<String>,
    connecting: bool,
    outcomes: Vec<(u32, bool)>,
}

impl Harness {
    fn apply(&mut self, out: Vec<Action<u32>>) {
        for a in out {
            match a {
                Action::Connect => {
                    assert!(!self.connecting, "asked for a second connection while one is being opened");
                    self.connecting = true;
                }
                Action::Write(bytes) => {
                    let text = String::from_utf8(bytes).unwrap();
                    if let Some(id) = text.split('|').nth(9) {
                        if text.contains("ORU^R01") {
                            self.unanswered.push(id.to_string());
                        }
                    }
                }
                Action::Close(_) => self.unanswered.clear(),
                Action::Acked { tag, .. } => self.outcomes.push((tag, true)),
                Action::DeadLettered(d) => self.outcomes.push((d.tag, false)),
                Action::RetryScheduled { .. } | Action::Ignored(_) => {}
            }
        }
    }

    fn step(&mut self, step: &Step) {
        let mut out = Vec::new();
        match step {
            Step::Offer => {
                let id = format!("M{}", self.offered.len());
                self.s.offer(message(&id, "AL"), self.offered.len() as u32, self.now, &mut out).unwrap();
                self.offered.push(id);
            }
            Step::Answer(n, code) if !self.unanswered.is_empty() && self.s.is_connected() => {
                let id = self.unanswered.remove(n % self.unanswered.len());
                self.s.handle_inbound(&ack(code, &id, ""), self.now, &mut out);
            }
            Step::Answer(..) => {}
            Step::Stray => self.s.handle_inbound(&ack("AA", "NEVER", ""), self.now, &mut out),
            Step::Advance(ms) => {
                self.now = Timestamp(self.now.0 + *ms as i64);
                self.s.poll(self.now, &mut out);
            }
            Step::Disconnect => {
                self.unanswered.clear();
                self.s.disconnected(self.now, &mut out);
            }
            Step::ConnectFails if self.connecting => {
                self.connecting = false;
                self.s.connect_failed(self.now, &mut out);
            }
            Step::ConnectFails => {}
        }
        self.apply(out);
        // A pending connection succeeds unless the next step says otherwise.
        if self.connecting && !matches!(step, Step::ConnectFails) {
            self.connecting = false;
            self.unanswered.clear();
            let mut out = Vec::new();
            self.s.connected(self.now, &mut out);
            self.apply(out);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn every_message_ends_once_acked_or_dead_lettered(
        steps in prop::collection::vec(step(), 1..80),
        max_in_flight in 1usize..4,
        enhanced in any::<bool>(),
    ) {
        let mode = if enhanced { AckMode::Enhanced } else { AckMode::Original };
        let mut h = Harness {
            s: Session::new(DeliveryConfig { max_in_flight, ack_mode: mode, ..config() }),
            now: Timestamp(0),
            offered: Vec::new(),
            unanswered: Vec::new(),
            connecting: false,
            outcomes: Vec::new(),
        };
        for st in &steps {
            h.step(st);
            prop_assert!(h.s.in_flight() <= max_in_flight);
            prop_assert!(h.unanswered.len() <= max_in_flight, "written and unanswered: {:?}", h.unanswered);
        }
        // Then the receiver accepts whatever arrives, and time passes until all is done.
        for _ in 0..1000 {
            if h.s.is_idle() {
                break;
            }
            if let Some(id) = h.unanswered.first().cloned() {
                let mut out = Vec::new();
                h.unanswered.remove(0);
                h.s.handle_inbound(&ack("AA", &id, ""), h.now, &mut out);
                h.apply(out);
            } else {
                h.step(&Step::Advance(h.s.next_wakeup().map(|t| (t.0 - h.now.0).max(0) as u64).unwrap_or(1)));
            }
        }
        prop_assert!(h.s.is_idle(), "not drained: {} in flight, {} queued", h.s.in_flight(), h.s.queued());
        let mut tags: Vec<u32> = h.outcomes.iter().map(|(t, _)| *t).collect();
        if max_in_flight == 1 {
            prop_assert_eq!(&tags, &(0..h.offered.len() as u32).collect::<Vec<_>>(), "order kept with one in flight");
        }
        tags.sort_unstable();
        prop_assert_eq!(tags, (0..h.offered.len() as u32).collect::<Vec<_>>(), "each message exactly once");
    }
}

proptest! {
    /// Whatever the peer sends, the session does not panic, and bytes that are no ACK of an
    /// offered message settle nothing.
    #[test]
    fn arbitrary_inbound_bytes_never_panic_nor_settle_a_message(
        chunks in prop::collection::vec(prop::collection::vec(prop_oneof![any::<u8>(), Just(0x0b), Just(0x1c), Just(b'|'), Just(b'\r')], 0..80), 0..8),
    ) {
        let (mut s, _) = connected(config(), &["M1"]);
        let mut out = Vec::new();
        for c in &chunks {
            s.handle_inbound(c, Timestamp(1), &mut out);
            s.handle_inbound(&[b"\x0bMSH|^~\\&|X\rMSA|AA|X".as_slice(), c, b"\r\x1c\r"].concat(), Timestamp(1), &mut out);
        }
        prop_assert!(out.iter().all(|a| matches!(a, Action::Ignored(_))), "{:?}", out);
        prop_assert_eq!(s.in_flight(), 1);
    }
}
