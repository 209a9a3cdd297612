//! The association rules on ADT sequences (messages written for these tests, values invented).

use medgw_protocols::association::{ApplyError, Associations, Attribution, AuditEvent, BedMap, BedMapping, BedState, Patient};
use medgw_protocols::hl7::AdtMessage;
use medgw_protocols::time::Timestamp;

const BASE: i64 = 1_796_000_000_000;

fn t(min: i64) -> Timestamp {
    Timestamp(BASE + min * 60_000)
}

fn bedmap() -> BedMap {
    let m = |gw: &str, room: &str, bed: &str| BedMapping {
        gateway_bed: gw.into(),
        facility: Some("STMARY".into()),
        point_of_care: "ICU".into(),
        room: room.into(),
        bed: bed.into(),
    };
    BedMap::new(vec![m("icu-3b", "03", "B"), m("icu-4a", "04", "A"), m("icu-5c", "05", "C")]).unwrap()
}

/// Location spelled as the feed does: `3B` → `ICU^03^B^STMARY`; anything else is a ward bed.
fn loc(l: &str) -> String {
    match l {
        "" => String::new(),
        "3B" => "ICU^03^B^STMARY".into(),
        "4A" => "ICU^04^A^STMARY".into(),
        "5C" => "ICU^05^C^STMARY".into(),
        other => format!("WARD^{other}^1^STMARY"),
    }
}

fn pid(mrn: &str) -> String {
    format!("PID|||{mrn}^^^STMARY&2.16.840.1.113883.3.999&ISO^MR||Name{mrn}^Given\r")
}

fn pv1(now: &str, prior: &str) -> String {
    format!("PV1||I|{}|||{}\r", loc(now), loc(prior))
}

fn adt(event: &str, ctrl: &str, body: &str) -> AdtMessage {
    let text =
        format!("MSH|^~\\&|PAS|STMARY|MEDGW|ICU|20261201080000+0000||ADT^{event}|{ctrl}|P|2.5\rEVN|{event}|20261201080000+0000\r{body}");
    AdtMessage::parse(text.as_bytes()).unwrap()
}

fn admit(mrn: &str, bed: &str, ctrl: &str) -> AdtMessage {
    adt("A01", ctrl, &(pid(mrn) + &pv1(bed, "")))
}

fn patient_id(a: &Attribution) -> Option<&str> {
    a.patient().map(|p| p.id.id.as_str())
}

fn who(s: &Associations, bed: &str, at: Timestamp) -> Option<String> {
    patient_id(&s.patient_at(bed, at)).map(String::from)
}

#[test]
fn admit_associates_from_its_effective_time() {
    let mut s = Associations::new(bedmap());
    let audit = s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    assert!(matches!(&audit[..], [AuditEvent::Associated { bed, .. }] if bed == "icu-3b"), "{audit:?}");
    assert_eq!(who(&s, "icu-3b", t(9)), None);
    assert_eq!(who(&s, "icu-3b", t(10)).as_deref(), Some("4711"));
    assert_eq!(who(&s, "icu-4a", t(10)), None);
    // The key is the MR identifier with its authority.
    let a = s.patient_at("icu-3b", t(11));
    assert_eq!(a.patient().unwrap().id.assigning_authority.universal_id, "2.16.840.1.113883.3.999");
    // A04 (register) associates the same way.
    s.apply(&adt("A04", "C2", &(pid("5822") + &pv1("4A", ""))), t(12)).unwrap();
    assert_eq!(who(&s, "icu-4a", t(12)).as_deref(), Some("5822"));
}

#[test]
fn transfer_splits_readings_by_their_time() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    s.apply(&adt("A02", "C2", &(pid("4711") + &pv1("4A", "3B"))), t(20)).unwrap();
    // A reading taken at 15 and published after the transfer still goes to 3B's patient.
    assert_eq!(who(&s, "icu-3b", t(15)).as_deref(), Some("4711"));
    assert_eq!(who(&s, "icu-3b", t(25)), None);
    assert_eq!(who(&s, "icu-4a", t(15)), None);
    assert_eq!(who(&s, "icu-4a", t(25)).as_deref(), Some("4711"));
    // Transfer out of this gateway's beds: the bed is free, the patient is nowhere here.
    s.apply(&adt("A02", "C3", &(pid("4711") + &pv1("7", "4A"))), t(30)).unwrap();
    assert_eq!(who(&s, "icu-4a", t(31)), None);
    assert_eq!(s.unmapped().0.get("STMARY/WARD/7/1"), Some(&1));
}

#[test]
fn discharge_ends_and_cancel_discharge_restores() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    s.apply(&adt("A03", "C2", &(pid("4711") + &pv1("3B", ""))), t(20)).unwrap();
    assert!(matches!(s.current("icu-3b"), BedState::Ended { .. }));
    assert_eq!(who(&s, "icu-3b", t(21)), None);
    assert_eq!(who(&s, "icu-3b", t(19)).as_deref(), Some("4711"));
    let audit = s.apply(&adt("A13", "C3", &(pid("4711") + &pv1("3B", ""))), t(30)).unwrap();
    assert!(matches!(&audit[..], [AuditEvent::Retracted { cancelled, .. }] if cancelled.control_id == "C2"), "{audit:?}");
    assert_eq!(who(&s, "icu-3b", t(25)).as_deref(), Some("4711"));
    assert!(matches!(s.current("icu-3b"), BedState::Associated { .. }));
}

#[test]
fn cancel_admit_retracts_the_admission_retroactively() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    s.apply(&adt("A11", "C2", &(pid("4711") + &pv1("3B", ""))), t(20)).unwrap();
    // The admission was entered in error: no reading of the bed is this patient's.
    assert_eq!(who(&s, "icu-3b", t(15)), None);
    assert_eq!(who(&s, "icu-3b", t(25)), None);
}

#[test]
fn cancel_transfer_puts_the_patient_back() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    s.apply(&adt("A02", "C2", &(pid("4711") + &pv1("4A", "3B"))), t(20)).unwrap();
    let audit = s.apply(&adt("A12", "C3", &(pid("4711") + &pv1("3B", "4A"))), t(30)).unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(who(&s, "icu-3b", t(25)).as_deref(), Some("4711"));
    assert_eq!(who(&s, "icu-4a", t(25)), None);
    assert_eq!(s.bed_of(&s.patient_at("icu-3b", t(31)).patient().unwrap().clone()), Some("icu-3b"));
}

#[test]
fn cancel_after_a_repeated_admit_still_ends_the_admission() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    // The feed sends the admission again under a new control id: nothing changes...
    s.apply(&admit("4711", "3B", "C2"), t(12)).unwrap();
    assert_eq!(who(&s, "icu-3b", t(11)).as_deref(), Some("4711"));
    // ...and cancelling "the admission" retracts the one that put the patient there.
    s.apply(&adt("A11", "C3", &(pid("4711") + &pv1("3B", ""))), t(20)).unwrap();
    assert_eq!(who(&s, "icu-3b", t(11)), None);
    assert_eq!(who(&s, "icu-3b", t(21)), None);
}

#[test]
fn cancel_that_would_undo_later_events_is_refused() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    s.apply(&adt("A02", "C2", &(pid("4711") + &pv1("4A", "3B"))), t(20)).unwrap();
    let err = s.apply(&adt("A11", "C3", &(pid("4711") + &pv1("4A", ""))), t(30)).unwrap_err();
    assert_eq!(err, ApplyError::CancelConflict { cancelled: "C1".into(), bed: "icu-3b".into() });
    assert_eq!(err.ack_error().code.value(), 207);
    // Nothing changed.
    assert_eq!(who(&s, "icu-4a", t(31)).as_deref(), Some("4711"));
    assert_eq!(who(&s, "icu-3b", t(15)).as_deref(), Some("4711"));
}

#[test]
fn swap_moves_both_beds_at_once() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    s.apply(&admit("5822", "4A", "C2"), t(11)).unwrap();
    let body = pid("4711") + &pv1("4A", "3B") + &pid("5822") + &pv1("3B", "4A");
    let audit = s.apply(&adt("A17", "C3", &body), t(20)).unwrap();
    assert_eq!(audit.iter().filter(|e| matches!(e, AuditEvent::Associated { .. })).count(), 2, "{audit:?}");
    assert_eq!(who(&s, "icu-3b", t(20)).as_deref(), Some("5822"));
    assert_eq!(who(&s, "icu-4a", t(20)).as_deref(), Some("4711"));
    assert_eq!(who(&s, "icu-3b", t(19)).as_deref(), Some("4711"));
    assert_eq!(who(&s, "icu-4a", t(19)).as_deref(), Some("5822"));
}

#[test]
fn swap_with_a_bed_elsewhere_moves_the_outside_patient_in() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    let body = pid("4711") + &pv1("9", "3B") + &pid("6933") + &pv1("3B", "9");
    s.apply(&adt("A17", "C2", &body), t(20)).unwrap();
    assert_eq!(who(&s, "icu-3b", t(21)).as_deref(), Some("6933"));
    assert!(s.beds().all(|b| s.current(b).clone() != BedState::Unassociated || b != "icu-3b"));
}

#[test]
fn merge_rewrites_ids_in_the_whole_timeline() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("T-0042", "3B", "C1"), t(10)).unwrap();
    let body = pid("4711") + "MRG|T-0042^^^STMARY^MR\r";
    let audit = s.apply(&adt("A40", "C2", &body), t(20)).unwrap();
    assert!(matches!(&audit[..], [AuditEvent::Merged { bed, .. }] if bed == "icu-3b"), "{audit:?}");
    // A reading from before the merge, published after, carries the surviving id.
    assert_eq!(who(&s, "icu-3b", t(15)).as_deref(), Some("4711"));
    // Later events about the surviving id find the bed.
    s.apply(&adt("A03", "C3", &(pid("4711") + &pv1("3B", ""))), t(30)).unwrap();
    assert_eq!(who(&s, "icu-3b", t(31)), None);
}

#[test]
fn merge_of_two_associated_records_associates_neither() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("T-0042", "3B", "C1"), t(10)).unwrap();
    s.apply(&admit("4711", "4A", "C2"), t(11)).unwrap();
    let audit = s.apply(&adt("A40", "C3", &(pid("4711") + "MRG|T-0042^^^STMARY^MR\r")), t(20)).unwrap();
    assert!(audit.iter().any(|e| matches!(e, AuditEvent::MergeCollision { beds, .. } if beds.len() == 2)), "{audit:?}");
    assert_eq!(who(&s, "icu-3b", t(21)), None);
    assert_eq!(who(&s, "icu-4a", t(21)), None);
}

#[test]
fn unknown_locations_are_counted_and_reported_once() {
    let mut s = Associations::new(bedmap());
    let a = s.apply(&admit("1", "12", "C1"), t(1)).unwrap();
    let b = s.apply(&admit("2", "12", "C2"), t(2)).unwrap();
    assert_eq!(a, vec![AuditEvent::UnmappedLocation { location: "STMARY/WARD/12/1".into() }]);
    assert!(b.is_empty(), "{b:?}");
    assert_eq!(s.unmapped().0.get("STMARY/WARD/12/1"), Some(&2));
}

#[test]
fn manual_and_adt_binding_on_one_bed_is_a_conflict() {
    let mut s = Associations::new(bedmap());
    let manual = Patient::from_adt(&admit("M-1", "3B", "X").patients[0]).unwrap();
    assert_eq!(s.set_manual("icu-3b", manual.clone()), None);
    assert_eq!(patient_id(&s.patient_at("icu-3b", t(1))), Some("M-1"));
    let audit = s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    assert!(audit.iter().any(|e| matches!(e, AuditEvent::ManualConflict { .. })), "{audit:?}");
    assert!(matches!(s.patient_at("icu-3b", t(11)), Attribution::Conflict { .. }));
    assert_eq!(patient_id(&s.patient_at("icu-3b", t(11))), None);
    // Before the ADT admission, the manual binding alone applies.
    assert_eq!(patient_id(&s.patient_at("icu-3b", t(9))), Some("M-1"));
    // Setting a manual binding on a bed the ADT feed holds reports it as well.
    assert!(matches!(s.clone().set_manual("icu-3b", manual), Some(AuditEvent::ManualConflict { .. })));
}

#[test]
fn device_reported_id_that_disagrees_holds_readings_back() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    assert_eq!(s.device_reported("icu-3b", "4711", t(11)), None);
    let e = s.device_reported("icu-3b", "9999", t(12));
    assert!(matches!(e, Some(AuditEvent::PatientMismatch { ref device_reported, .. }) if device_reported == "9999"));
    assert_eq!(s.device_reported("icu-3b", "9999", t(13)), None, "reported once");
    assert!(matches!(s.patient_at("icu-3b", t(13)), Attribution::Mismatch { .. }));
    assert_eq!(who(&s, "icu-3b", t(13)), None);
    assert_eq!(who(&s, "icu-3b", t(11)).as_deref(), Some("4711"));
    assert!(matches!(s.device_reported("icu-3b", "4711", t(14)), Some(AuditEvent::MismatchResolved { .. })));
    assert_eq!(who(&s, "icu-3b", t(14)).as_deref(), Some("4711"));
}

#[test]
fn repeated_message_changes_nothing() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    s.apply(&adt("A02", "C2", &(pid("4711") + &pv1("4A", "3B"))), t(20)).unwrap();
    let again = s.apply(&admit("4711", "3B", "C1"), t(30)).unwrap();
    assert!(matches!(&again[..], [AuditEvent::Duplicate { .. }]));
    assert_eq!(who(&s, "icu-4a", t(31)).as_deref(), Some("4711"));
}

#[test]
fn admit_into_an_occupied_bed_displaces_and_never_doubles() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    let audit = s.apply(&admit("5822", "3B", "C2"), t(20)).unwrap();
    assert!(audit.iter().any(|e| matches!(e, AuditEvent::Displaced { previous, .. } if previous.id.id == "4711")), "{audit:?}");
    // Re-admitting 5822 elsewhere vacates 3B.
    s.apply(&admit("5822", "4A", "C3"), t(30)).unwrap();
    assert_eq!(who(&s, "icu-3b", t(31)), None);
    assert_eq!(who(&s, "icu-4a", t(31)).as_deref(), Some("5822"));
}

#[test]
fn late_event_takes_effect_at_the_bed_s_last_change() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    let audit = s.apply(&adt("A02", "C2", &(pid("4711") + &pv1("4A", "3B"))), t(5)).unwrap();
    assert!(audit.iter().any(|e| matches!(e, AuditEvent::OutOfOrder { applied, .. } if *applied == t(10))), "{audit:?}");
    assert_eq!(who(&s, "icu-4a", t(10)).as_deref(), Some("4711"));
}

#[test]
fn identifier_without_authority_is_refused_for_our_beds_only() {
    let mut s = Associations::new(bedmap());
    let bare = |bed: &str, c: &str| adt("A01", c, &(String::from("PID|||4711^^^^MR\r") + &pv1(bed, "")));
    assert_eq!(s.apply(&bare("3B", "C1"), t(1)).unwrap_err(), ApplyError::NoQualifiedId);
    assert_eq!(ApplyError::NoQualifiedId.ack_error().location, Some(("PID", 3)));
    assert!(s.apply(&bare("12", "C2"), t(1)).is_ok());
    assert_eq!(who(&s, "icu-3b", t(2)), None);
}

#[test]
fn update_refreshes_demographics_without_moving() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    let body = "PID|||4711^^^STMARY^MR||Brennan^Siobhan\rPV1||I|ICU^04^A^STMARY\r";
    let audit = s.apply(&adt("A08", "C2", body), t(20)).unwrap();
    assert!(matches!(&audit[..], [AuditEvent::Updated { bed, .. }] if bed == "icu-3b"), "{audit:?}");
    assert_eq!(s.patient_at("icu-3b", t(21)).patient().unwrap().name.as_ref().unwrap().family, "Brennan");
    assert_eq!(who(&s, "icu-4a", t(21)), None);
}

#[test]
fn state_survives_a_round_trip_through_json() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    s.apply(&adt("A02", "C2", &(pid("4711") + &pv1("4A", "3B"))), t(20)).unwrap();
    s.device_reported("icu-4a", "9999", t(21));
    let json = serde_json::to_string(&s).unwrap();
    let mut r: Associations = serde_json::from_str::<Associations>(&json).unwrap().with_config(bedmap());
    for (bed, at) in [("icu-3b", 15), ("icu-3b", 25), ("icu-4a", 15), ("icu-4a", 20), ("icu-4a", 22)] {
        assert_eq!(r.patient_at(bed, t(at)), s.patient_at(bed, t(at)), "{bed} {at}");
    }
    // Cancels and duplicates still work after the restart.
    assert!(matches!(&r.apply(&admit("4711", "3B", "C1"), t(30)).unwrap()[..], [AuditEvent::Duplicate { .. }]));
    r.apply(&adt("A12", "C3", &(pid("4711") + &pv1("3B", "4A"))), t(30)).unwrap();
    assert_eq!(who(&r, "icu-3b", t(25)).as_deref(), Some("4711"));
}

#[test]
fn prune_keeps_the_state_in_force() {
    let mut s = Associations::new(bedmap());
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    s.apply(&adt("A02", "C2", &(pid("4711") + &pv1("4A", "3B"))), t(20)).unwrap();
    s.apply(&adt("A02", "C3", &(pid("4711") + &pv1("5C", "4A"))), t(30)).unwrap();
    s.prune(t(25));
    assert_eq!(who(&s, "icu-4a", t(26)).as_deref(), Some("4711"));
    assert_eq!(who(&s, "icu-5c", t(31)).as_deref(), Some("4711"));
    // C3 is still cancellable.
    s.apply(&adt("A12", "C4", &(pid("4711") + &pv1("4A", "5C"))), t(40)).unwrap();
    assert_eq!(who(&s, "icu-4a", t(41)).as_deref(), Some("4711"));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Admit(usize, usize),
        Transfer(usize, usize),
        Discharge(usize),
        Swap(usize, usize),
        Merge(usize, usize),
        CancelLast,
    }

    const LOCS: [&str; 4] = ["3B", "4A", "5C", "12"];
    const MRNS: [&str; 4] = ["P1", "P2", "P3", "P4"];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4usize, 0..4usize).prop_map(|(p, l)| Op::Admit(p, l)),
            (0..4usize, 0..4usize).prop_map(|(p, l)| Op::Transfer(p, l)),
            (0..4usize).prop_map(Op::Discharge),
            (0..4usize, 0..4usize).prop_map(|(a, b)| Op::Swap(a, b)),
            (0..4usize, 0..4usize).prop_map(|(a, b)| Op::Merge(a, b)),
            Just(Op::CancelLast),
        ]
    }

    type Snapshot = Vec<(String, Option<String>)>;

    fn snapshot(s: &Associations, upto: i64) -> Snapshot {
        let mut v = Vec::new();
        for bed in ["icu-3b", "icu-4a", "icu-5c"] {
            for m in 0..=upto {
                v.push((format!("{bed}@{m}"), who(s, bed, t(m))));
            }
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// No sequence puts a patient in two beds at any time, and a cancel right after the event
        /// it cancels restores every bed at every time to what it was before that event.
        #[test]
        fn never_two_beds_and_cancel_restores(ops in proptest::collection::vec(op(), 1..25)) {
            let mut s = Associations::new(bedmap());
            let mut last: Option<(&str, String, i64, Snapshot)> = None;
            for (i, op) in ops.iter().enumerate() {
                let now = 10 * (i as i64 + 1);
                let ctrl = format!("C{i}");
                let before = snapshot(&s, now + 5);
                let (msg, cancel) = match op {
                    Op::Admit(p, l) => (admit(MRNS[*p], LOCS[*l], &ctrl), Some("A11")),
                    Op::Transfer(p, l) => (adt("A02", &ctrl, &(pid(MRNS[*p]) + &pv1(LOCS[*l], ""))), Some("A12")),
                    Op::Discharge(p) => (adt("A03", &ctrl, &(pid(MRNS[*p]) + &pv1("", ""))), Some("A13")),
                    Op::Swap(a, b) => (adt("A17", &ctrl, &(pid(MRNS[*a]) + &pv1(LOCS[*b], "") + &pid(MRNS[*b]) + &pv1(LOCS[*a], ""))), None),
                    Op::Merge(a, b) => (adt("A40", &ctrl, &(pid(MRNS[*a]) + &format!("MRG|{}^^^STMARY^MR\r", MRNS[*b]))), None),
                    Op::CancelLast => {
                        if let Some((code, mrn, x_now, snap)) = last.take() {
                            let c = adt(code, &ctrl, &(pid(&mrn) + &pv1("", "")));
                            if s.apply(&c, t(now)).is_ok() {
                                prop_assert_eq!(snapshot(&s, x_now + 5), snap, "cancel did not restore; ops {:?}", ops);
                            }
                        }
                        continue;
                    }
                };
                let ok = s.apply(&msg, t(now)).is_ok();
                // A repeat of what already held (e.g. an admit into the patient's own bed) is not
                // what a cancel retracts; the restore property is about events that changed something.
                let changed = snapshot(&s, now + 5) != before;
                last = match (ok && changed, cancel) {
                    (true, Some(code)) => Some((code, msg.patients[0].ids[0].id.clone(), now, before)),
                    _ => None,
                };
                // Never a patient in two beds, now or at any earlier time.
                for m in 0..=now {
                    let mut seen: Vec<String> = Vec::new();
                    for bed in ["icu-3b", "icu-4a", "icu-5c"] {
                        if let Some(p) = who(&s, bed, t(m)) {
                            prop_assert!(!seen.contains(&p), "{} in two beds at {} after {:?}", p, m, ops);
                            seen.push(p);
                        }
                    }
                }
            }
        }
    }
}

/// `span_at` is the interval over which `patient_at` does not change: a cache keyed on it gives
/// the answer a fresh lookup would, on both sides of a transfer and of a mismatch.
#[test]
fn span_at_bounds_the_interval_of_one_answer() {
    let mut s = Associations::new(bedmap());
    assert_eq!(s.span_at("icu-3b", t(5)), (Timestamp(i64::MIN), Timestamp(i64::MAX)));
    s.apply(&admit("4711", "3B", "C1"), t(10)).unwrap();
    s.apply(&adt("A02", "C2", &(pid("4711") + &pv1("4A", "3B"))), t(20)).unwrap();
    assert_eq!(s.span_at("icu-3b", t(5)), (Timestamp(i64::MIN), t(10)));
    assert_eq!(s.span_at("icu-3b", t(15)), (t(10), t(20)));
    assert_eq!(s.span_at("icu-3b", t(25)), (t(20), Timestamp(i64::MAX)));
    s.device_reported("icu-4a", "9999", t(30));
    assert_eq!(s.span_at("icu-4a", t(25)), (t(20), t(30)));
    assert_eq!(s.span_at("icu-4a", t(35)), (t(30), Timestamp(i64::MAX)));
    for m in [1, 9, 10, 15, 19, 20, 25, 29, 30, 40] {
        for bed in ["icu-3b", "icu-4a"] {
            let (from, until) = s.span_at(bed, t(m));
            assert!(from <= t(m) && t(m) < until);
            let here = s.patient_at(bed, t(m));
            assert_eq!(s.patient_at(bed, from.max(t(0))), here, "{bed} at {m}: start of its span");
            assert_eq!(s.patient_at(bed, Timestamp(until.0.min(t(100).0) - 1)), here, "{bed} at {m}: end of its span");
        }
    }
}
