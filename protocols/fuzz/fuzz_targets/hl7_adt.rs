//! HL7 v2 ADT parser and ACK builder on arbitrary bytes: never panics; every refusal has a table
//! 0357 code; the ACK for any header it could read parses back as an ACK of that message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medgw_protocols::encode::hl7v2;
use medgw_protocols::hl7::{ack, message, AdtMessage, Header, Message};
use medgw_protocols::Timestamp;

fuzz_target!(|data: &[u8]| {
    let parsed = AdtMessage::parse(data);
    if let Err(e) = &parsed {
        assert!(e.code().value() >= 100);
    }
    let Ok(text) = message::decode_text(data) else { return };
    let Ok(msg) = Message::parse(&text) else { return };
    let Ok(header) = Header::read(&msg) else { return };
    let (code, err) = match &parsed {
        Ok(_) => (ack::AckCode::AA, None),
        Err(e) => {
            let (c, a) = ack::AckError::from_parse(e);
            (c, Some(a))
        }
    };
    let out = ack::build(Some(&header), code, err.as_ref(), "FUZZ", "MEDGW", "", Timestamp(0));
    let back = hl7v2::parse_ack(&out).expect("our ACK parses");
    assert_eq!(back.accepted(), parsed.is_ok());
});
