//! The ADT view on realistic messages for every event medgw handles, written for these tests
//! (values invented), and malformed input.

use medgw_protocols::encode::{hl7v2, mllp};
use medgw_protocols::hl7::{ack, message, AdtEvent, AdtMessage, Header, Hl7Error, Message, Version};
use medgw_protocols::time::{DeviceTime, Timestamp};

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn parse(text: &str) -> Result<AdtMessage, Hl7Error> {
    AdtMessage::parse(text.as_bytes())
}

const A01: &str = "MSH|^~\\&|PAS|STMARY|MEDGW|ICU|20261201081502+0100||ADT^A01^ADT_A01|PAS000101|P|2.5|||AL|NE||UNICODE UTF-8\r\
EVN|A01|20261201081500+0100|||NURSE7^Okafor^Ada|20261201081000+0100\r\
PID|1||4711^^^STMARY&2.16.840.1.113883.3.999&ISO^MR~99887766^^^NHS^NH||Brennan^Siobhan^M^^Mrs||19580214|F\r\
PV1|1|I|ICU^03^B^STMARY^^N^West^2||||||||||||||||V2026-5531^^^STMARY^VN\r";

#[test]
fn a01_admit() {
    let m = parse(A01).unwrap();
    assert_eq!(m.event, AdtEvent::A01);
    assert_eq!(m.version, Version::V2_5);
    assert_eq!(m.header.control_id, "PAS000101");
    assert_eq!(m.recorded, Some(DeviceTime::Utc(ts("2026-12-01T07:15:00Z"))));
    assert_eq!(m.occurred, Some(DeviceTime::Utc(ts("2026-12-01T07:10:00Z"))));
    assert_eq!(m.effective_time(), m.occurred);
    let p = &m.patients[0];
    assert_eq!(p.ids.len(), 2);
    assert_eq!(p.ids[0].id, "4711");
    assert_eq!(p.ids[0].assigning_authority.universal_id, "2.16.840.1.113883.3.999");
    assert_eq!(p.ids[0].id_type, "MR");
    assert_eq!(p.ids[1].assigning_authority.namespace, "NHS");
    let name = p.name.as_ref().unwrap();
    assert_eq!((name.family.as_str(), name.given.as_str(), name.prefix.as_str()), ("Brennan", "Siobhan", "Mrs"));
    let v = p.visit.as_ref().unwrap();
    assert_eq!(v.class, "I");
    let loc = v.location.as_ref().unwrap();
    assert_eq!(
        (loc.point_of_care.as_str(), loc.room.as_str(), loc.bed.as_str(), loc.facility.namespace.as_str()),
        ("ICU", "03", "B", "STMARY")
    );
    assert_eq!(v.prior_location, None);
    assert_eq!(v.visit_number.as_ref().unwrap().id, "V2026-5531");
}

#[test]
fn a02_transfer_has_both_locations() {
    let m = parse(
        "MSH|^~\\&|PAS|STMARY|MEDGW|ICU|20261201120000||ADT^A02^ADT_A02|PAS000102|P|2.4\r\
EVN|A02|20261201120000\r\
PID|||4711^^^STMARY^MR||Brennan^Siobhan\r\
PV1||I|STEP^11^A^STMARY|||ICU^03^B^STMARY\r",
    )
    .unwrap();
    assert_eq!((m.event, m.version), (AdtEvent::A02, Version::V2_4));
    let v = m.patients[0].visit.as_ref().unwrap();
    assert_eq!(v.location.as_ref().unwrap().point_of_care, "STEP");
    assert_eq!(v.prior_location.as_ref().unwrap().bed, "B");
    // No zone: the sender's local time, for the feed's configured zone to resolve.
    assert_eq!(m.effective_time(), Some(DeviceTime::Local(ts("2026-12-01T12:00:00Z"))));
}

#[test]
fn a03_a04_a08_a11_a12_a13_read_their_event() {
    for (code, event, version) in [
        ("A03", AdtEvent::A03, "2.3"),
        ("A04", AdtEvent::A04, "2.3.1"),
        ("A08", AdtEvent::A08, "2.5.1"),
        ("A11", AdtEvent::A11, "2.6"),
        ("A12", AdtEvent::A12, "2.5"),
        ("A13", AdtEvent::A13, "2.4"),
    ] {
        let text = format!(
            "MSH|^~\\&|PAS|STMARY|||20261201130000||ADT^{code}|C-{code}|P|{version}\rEVN|{code}|20261201130000\rPID|||4711^^^STMARY^MR||Brennan^Siobhan\rPV1||I|ICU^03^B^STMARY|||ICU^04^A^STMARY\r"
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.event, event);
        assert_eq!(m.header.control_id, format!("C-{code}"));
        assert_eq!(m.patients[0].visit.as_ref().unwrap().location.as_ref().unwrap().room, "03");
    }
}

#[test]
fn v23_event_type_from_evn_when_msh9_has_no_trigger() {
    let m = parse("MSH|^~\\&|PAS|STMARY|||20261201130000||ADT|C9|P|2.3\rEVN|A03|20261201130000\rPID|||4711^^^STMARY^MR\rPV1||I|ICU^03^B\r")
        .unwrap();
    assert_eq!(m.event, AdtEvent::A03);
}

#[test]
fn a17_swap_has_two_patients_with_their_visits() {
    let m = parse(
        "MSH|^~\\&|PAS|STMARY|MEDGW|ICU|20261201140000+0000||ADT^A17^ADT_A17|PAS000117|P|2.5\r\
EVN|A17|20261201140000+0000\r\
PID|||4711^^^STMARY^MR||Brennan^Siobhan\r\
PV1||I|ICU^04^A^STMARY|||ICU^03^B^STMARY\r\
PID|||5822^^^STMARY^MR||Nakamura^Ren\r\
PV1||I|ICU^03^B^STMARY|||ICU^04^A^STMARY\r",
    )
    .unwrap();
    assert_eq!(m.event, AdtEvent::A17);
    assert_eq!(m.patients.len(), 2);
    assert_eq!(m.patients[1].ids[0].id, "5822");
    assert_eq!(m.patients[1].visit.as_ref().unwrap().location.as_ref().unwrap().room, "03");
    // One patient only is not a swap.
    let one = "MSH|^~\\&|PAS|STMARY|||20261201140000||ADT^A17|X|P|2.5\rEVN|A17|20261201140000\rPID|||4711^^^STMARY^MR\rPV1||I|ICU^04^A\r";
    assert_eq!(parse(one).unwrap_err(), Hl7Error::MissingSegment { segment: "PID" });
}

#[test]
fn a40_merge_reads_mrg1() {
    let m = parse(
        "MSH|^~\\&|MPI|STMARY|MEDGW|ICU|20261201150000+0000||ADT^A40^ADT_A39|MPI000140|P|2.5\r\
EVN|A40|20261201150000+0000\r\
PID|||4711^^^STMARY^MR||Brennan^Siobhan\r\
MRG|T-0042^^^STMARY^MR~T-0043^^^STMARY^MR\r",
    )
    .unwrap();
    assert_eq!(m.event, AdtEvent::A40);
    let merged: Vec<&str> = m.patients[0].merged_ids.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(merged, ["T-0042", "T-0043"]);
    assert_eq!(m.patients[0].visit, None);
    let no_mrg = "MSH|^~\\&|MPI|STMARY|||20261201150000||ADT^A40|Y|P|2.5\rPID|||4711^^^STMARY^MR\r";
    assert_eq!(parse(no_mrg).unwrap_err(), Hl7Error::MissingSegment { segment: "MRG" });
}

#[test]
fn escaped_names_and_custom_delimiters() {
    let m = parse(
        "MSH!:*#@!PAS!STMARY!!!20261201081500!!ADT:A08!C10!P!2.5\nEVN!A08!20261201081500\nPID!!!4711:::STMARY:MR!!O#F#Neill@Old:Se#T#n\nPV1!!I!ICU:03:B\n",
    )
    .unwrap();
    let name = m.patients[0].name.as_ref().unwrap();
    assert_eq!(name.family, "O!Neill");
    assert_eq!(name.given, "Se@n");
}

#[test]
fn refuses_what_it_cannot_process_with_a_typed_error() {
    let body = "\rEVN|A01|20261201081500\rPID|||4711^^^STMARY^MR\rPV1||I|ICU^03^B\r";
    let with = |msh: &str| parse(&format!("{msh}{body}"));
    assert_eq!(
        with("MSH|^~\\&|PAS|H|||20261201081500||ADT^A01|C|P|2.7").unwrap_err(),
        Hl7Error::UnsupportedVersion { version: "2.7".into() }
    );
    assert_eq!(
        with("MSH|^~\\&|PAS|H|||20261201081500||ADT^A01|C|P|2.2").unwrap_err(),
        Hl7Error::UnsupportedVersion { version: "2.2".into() }
    );
    assert_eq!(
        with("MSH|^~\\&|PAS|H|||20261201081500||ORU^R01|C|P|2.5").unwrap_err(),
        Hl7Error::UnsupportedMessageType { message_type: "ORU".into() }
    );
    assert_eq!(with("MSH|^~\\&|PAS|H|||20261201081500||ADT^A28|C|P|2.5").unwrap_err(), Hl7Error::UnsupportedEvent { event: "A28".into() });
    assert_eq!(with("MSH|^~\\&|PAS|H|||20261201081500||ADT^A01||P|2.5").unwrap_err(), Hl7Error::MissingField { segment: "MSH", field: 10 });
    assert_eq!(
        with("MSH|^~\\&|PAS|H|||2026120108150||ADT^A01|C|P|2.5").unwrap_err(),
        Hl7Error::BadValue { segment: "MSH", field: 7, what: "time" }
    );
    assert_eq!(with("MSH|^~|PAS|H").unwrap_err(), Hl7Error::BadEncodingCharacters);
    // v2.7's fifth (truncation) character is read, so the refusal names the version.
    assert_eq!(
        with("MSH|^~\\&#|PAS|H|||20261201081500||ADT^A01|C|P|2.7").unwrap_err(),
        Hl7Error::UnsupportedVersion { version: "2.7".into() }
    );
    // Missing PID-3, PV1, and an unterminated escape in the name.
    let msh = "MSH|^~\\&|PAS|H|||20261201081500||ADT^A01|C|P|2.5\r";
    assert_eq!(parse(&format!("{msh}PID|||\rPV1||I|ICU\r")).unwrap_err(), Hl7Error::MissingField { segment: "PID", field: 3 });
    assert_eq!(parse(&format!("{msh}PID|||4711^^^H\r")).unwrap_err(), Hl7Error::MissingSegment { segment: "PV1" });
    assert_eq!(parse(&format!("{msh}PID|||4711^^^H||Bad\\F\rPV1||I|ICU\r")).unwrap_err(), Hl7Error::BadEscape { segment: "PID", field: 5 });
    assert_eq!(
        parse(&format!("{msh}EVN|A01|2026-12-01\rPID|||4711^^^H\rPV1||I|ICU\r")).unwrap_err(),
        Hl7Error::BadValue { segment: "EVN", field: 2, what: "time" }
    );
    assert_eq!(parse("PID|||4711\r").unwrap_err(), Hl7Error::MissingMsh);
    assert_eq!(parse("").unwrap_err(), Hl7Error::Empty);
}

#[test]
fn truncated_messages_are_refused_never_half_read() {
    // Every prefix of A01 parses or fails with a typed error; none panics, and any prefix that
    // parses and reaches PV1 reads the same patient.
    for n in 0..A01.len() {
        if let Ok(m) = AdtMessage::parse(&A01.as_bytes()[..n]) {
            assert_eq!(m.patients[0].ids[0].id, "4711");
        }
    }
}

#[test]
fn mllp_framed_messages_deframe_in_any_chunking() {
    let framed = mllp::frame(A01.as_bytes());
    let two: Vec<u8> = [framed.clone(), framed].concat();
    for chunk in [1, 7, 64, two.len()] {
        let mut d = mllp::Deframer::new(64 * 1024);
        let mut out = Vec::new();
        for c in two.chunks(chunk) {
            d.feed(c, &mut out);
        }
        assert_eq!(out.len(), 2);
        for f in out {
            let mllp::Frame::Message(m) = f else { panic!("{f:?}") };
            assert_eq!(AdtMessage::parse(&m).unwrap().header.control_id, "PAS000101");
        }
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = AdtMessage::parse(&bytes);
        }

        #[test]
        fn mutated_messages(pos in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
            let mut m = A01.as_bytes().to_vec();
            let p = pos % m.len();
            m[p] = byte;
            m.truncate(cut.max(p));
            let parsed = AdtMessage::parse(&m);
            if let Err(e) = &parsed {
                // Every refusal has a 0357 code for the ACK.
                prop_assert!(e.code().value() >= 100);
            }
            // Whatever header could be read, the ACK names it and says accepted iff parsed.
            let Ok(text) = message::decode_text(&m) else { return Ok(()) };
            let Ok(msg) = Message::parse(&text) else { return Ok(()) };
            let Ok(header) = Header::read(&msg) else { return Ok(()) };
            let (code, err) = match &parsed {
                Ok(_) => (ack::AckCode::AA, None),
                Err(e) => {
                    let (c, a) = ack::AckError::from_parse(e);
                    (c, Some(a))
                }
            };
            let out = ack::build(Some(&header), code, err.as_ref(), "T", "MEDGW", "", Timestamp(0));
            let back = hl7v2::parse_ack(&out).unwrap();
            prop_assert_eq!(back.accepted(), parsed.is_ok());
            prop_assert_eq!(message::unescape(&back.message_id, &header.delimiters).unwrap(), header.control_id);
        }

        #[test]
        fn fields_of_hl7_alphabet(s in "[A-Z0-9|^~\\\\&\r]{0,300}") {
            let _ = AdtMessage::parse(format!("MSH|^~\\&|{s}").as_bytes());
            let _ = AdtMessage::parse(format!("MSH|^~\\&|A|B|||20260101||ADT^A01|1|P|2.5\rPID|{s}").as_bytes());
        }
    }
}
