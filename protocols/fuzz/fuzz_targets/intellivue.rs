//! Fuzz target: IntelliVue MIB/RS232 Data Export.
//!
//! The first byte picks how the rest is used, so one corpus reaches every layer:
//! - 0: raw bytes, in chunks sized by the input, to an active client (with timer polls) and a
//!   listen-only client;
//! - 1: the rest split at 0xC1 into pieces, each wrapped in a valid frame (good FCS) and fed to
//!   both clients: the session and PDU parsers see arbitrary user data behind a good frame
//!   (instead of skipping the FCS under `cfg(fuzzing)`, which this target does not need);
//! - 2: the parsers directly (session, ROapdus, poll request/reply, attribute types, the alert
//!   monitor's alarm lists, the demographics' patient id, SET argument/result, TextIdList), and the
//!   framing round trip encode -> deframe -> same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::wire::intellivue::attributes::{AbsoluteTime, AttributeList, NuObsValue, NuObsValueCmp, ProductionSpec, SystemModel};
use medgw_protocols::wire::intellivue::pdu::{self, action};
use medgw_protocols::wire::intellivue::{alarms, demographics, frame, session, wave, IntelliVueClient};
use medgw_protocols::Timestamp;

fn clients() -> [IntelliVueClient; 3] {
    [
        IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only: false, ..Default::default() }),
        // With waves: the priority list SET and the 256 ms wave polls too.
        IntelliVueClient::new(&DecoderOptions {
            poll_period_ms: 1000,
            waves: vec![wave::physio::NOM_ECG_ELEC_POTL_II, wave::physio::NOM_PLETH],
            ..Default::default()
        }),
        IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() }),
    ]
}

fn drive(chunks: &[&[u8]]) {
    for mut c in clients() {
        let listen_only = !c.sends_requests();
        let mut out = Vec::new();
        let mut now = Timestamp(1_700_000_000_000);
        c.start(now, &mut out);
        for ch in chunks {
            c.feed(ch, now, &mut out);
            now = Timestamp(now.0 + 400);
            c.poll(now, &mut out);
            let _ = c.next_wakeup();
        }
        if listen_only {
            assert!(!out.iter().any(|e| matches!(e, Event::Transmit(_))));
        }
        // Every frame the client sends is a well-formed frame.
        for e in &out {
            if let Event::Transmit(bytes) = e {
                let mut d = frame::Deframer::<1024>::new();
                let frames = bytes.iter().filter(|&&b| matches!(d.push(b), frame::FrameEvent::Frame { .. })).count();
                assert_eq!(frames, 1);
            }
        }
    }
}

fn parsers(data: &[u8]) {
    let _ = session::parse(data);
    if let Ok(apdu) = pdu::parse_apdu(data) {
        let _ = apdu.name();
    }
    for a in [action::NOM_ACT_POLL_MDIB_DATA, action::NOM_ACT_POLL_MDIB_DATA_EXT] {
        if let Ok(r) = pdu::PollReply::parse(a, data) {
            for (_, o) in r.info.observations().flatten() {
                for ava in o.attributes.iter().flatten() {
                    let _ = NuObsValue::parse(ava.value);
                    let _ = alarms::list_report(ava.id, ava.value);
                }
                let _ = demographics::patient(&o.attributes);
            }
        }
        let _ = pdu::PollRequest::parse(a, data);
    }
    if let Ok((_, mods)) = pdu::parse_set_argument(data) {
        for m in mods.flatten() {
            let _ = wave::text_id_list(m.value).map(|ids| ids.count());
        }
    }
    let _ = pdu::SetResult::parse(data);
    let _ = wave::text_id_list(data).map(|ids| ids.count());
    // The alert monitor's alarm lists.
    for id in [alarms::NOM_ATTR_AL_MON_P_AL_LIST, alarms::NOM_ATTR_AL_MON_T_AL_LIST] {
        if let Ok(r) = alarms::list_report(id, data) {
            assert!(r.conditions.iter().all(|c| !c.text.is_empty()));
        }
    }
    let _ = pdu::MdsCreateInfo::parse(data);
    let _ = pdu::EventReport::parse(data);
    let _ = pdu::ActionResult::parse(data);
    if let Ok(l) = AttributeList::parse(data) {
        let _ = l.validate();
    }
    if let Ok(c) = NuObsValueCmp::parse(data) {
        assert_eq!(c.iter().count(), c.len());
    }
    let _ = AbsoluteTime::parse(data).map(|t| t.civil());
    let _ = SystemModel::parse(data);
    if let Ok(p) = ProductionSpec::parse(data) {
        let _ = p.find(1, 8);
    }
    // Framing round trip.
    if data.len() <= 2000 {
        let f = frame::encode_vec(data);
        let mut d = frame::Deframer::<4096>::new();
        let mut got = None;
        for &b in &f {
            if let frame::FrameEvent::Frame { user_data, .. } = d.push(b) {
                got = Some(user_data.to_vec());
            }
        }
        assert_eq!(got.as_deref(), Some(data));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            let size = (mode as usize >> 2).max(1);
            let chunks: Vec<&[u8]> = rest.chunks(size).collect();
            drive(&chunks);
        }
        1 => {
            let frames: Vec<Vec<u8>> = rest.split(|&b| b == 0xC1).map(frame::encode_vec).collect();
            let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
            drive(&refs);
        }
        _ => parsers(rest),
    }
});
