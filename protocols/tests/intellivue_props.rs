//! IntelliVue Data Export property tests: chunking, arbitrary input, transparency round trip.

#[path = "intellivue_harness.rs"]
mod harness;

use std::sync::OnceLock;

use harness::{Link, T0};
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::wire::intellivue::{frame, IntelliVueClient};
use medgw_protocols::Timestamp;
use proptest::prelude::*;

/// What the monitor sent during 8 s of a session (AARE, MDS create, 9 poll replies).
fn session_stream() -> &'static [u8] {
    static STREAM: OnceLock<Vec<u8>> = OnceLock::new();
    STREAM.get_or_init(|| {
        let mut l = Link::new(1000, 42);
        l.start();
        l.run_for(8_000);
        assert!(l.measurements().len() > 50);
        l.monitor_bytes
    })
}

fn listen(chunks: &[&[u8]]) -> Vec<Event> {
    let mut c = IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() });
    let mut out = Vec::new();
    c.start(T0, &mut out);
    for ch in chunks {
        c.feed(ch, T0, &mut out);
    }
    out
}

fn split<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut v = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(1).clamp(1, rest.len());
        let (a, b) = rest.split_at(n);
        v.push(a);
        rest = b;
        i += 1;
    }
    v
}

#[test]
fn one_byte_at_a_time_equals_whole() {
    let s = session_stream();
    let whole = listen(&[s]);
    let bytes: Vec<&[u8]> = s.chunks(1).collect();
    assert_eq!(listen(&bytes), whole);
    assert!(whole.iter().filter(|e| matches!(e, Event::Measurement(_))).count() > 50);
    assert!(!whole.iter().any(|e| matches!(e, Event::Rejected { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_decodes_the_same(sizes in prop::collection::vec(1usize..200, 1..20)) {
        let s = session_stream();
        prop_assert_eq!(listen(&split(s, &sizes)), listen(&[s]));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..3000), sizes in prop::collection::vec(1usize..300, 1..8)) {
        for listen_only in [false, true] {
            let mut c = IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only, ..Default::default() });
            let mut out = Vec::new();
            c.start(T0, &mut out);
            let mut now = T0;
            for ch in split(&data, &sizes) {
                c.feed(ch, now, &mut out);
                now = Timestamp(now.0 + 700);
                c.poll(now, &mut out);
            }
            if listen_only {
                prop_assert!(!out.iter().any(|e| matches!(e, Event::Transmit(_))));
            }
        }
    }

    /// Corrupting bytes of a real session reaches the PDU parsers behind a good-looking frame
    /// only rarely; so also re-frame corrupted user data with a valid FCS.
    #[test]
    fn corrupted_sessions_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12), reframe in any::<bool>()) {
        let s = session_stream();
        let mut bytes = s.to_vec();
        if reframe {
            // Un-frame, corrupt the user data, frame again: every frame has a good FCS.
            let mut d = frame::Deframer::<4096>::new();
            let mut frames: Vec<Vec<u8>> = Vec::new();
            for &b in s {
                if let frame::FrameEvent::Frame { user_data, .. } = d.push(b) {
                    frames.push(user_data.to_vec());
                }
            }
            let nframes = frames.len();
            for (i, (idx, x)) in flips.iter().enumerate() {
                let f = &mut frames[i % nframes];
                if !f.is_empty() {
                    let k = idx.index(f.len());
                    f[k] ^= x | 1;
                }
            }
            bytes = frames.iter().flat_map(|f| frame::encode_vec(f)).collect();
        } else {
            for (idx, x) in &flips {
                let k = idx.index(bytes.len());
                bytes[k] ^= x | 1;
            }
        }
        let mut c = IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() });
        let mut out = Vec::new();
        c.feed(&bytes, T0, &mut out);
        // Offsets of rejections are within the stream.
        for e in &out {
            if let Event::Rejected { offset, .. } = e {
                prop_assert!((*offset as usize) < bytes.len());
            }
        }
    }

    /// The bulk `feed` of the deframer gives exactly the events of byte-by-byte `push`, on
    /// arbitrary bytes mixed with real frames.
    #[test]
    fn deframer_feed_equals_push(noise in prop::collection::vec(any::<u8>(), 0..400), cut in any::<prop::sample::Index>()) {
        let s = session_stream();
        let at = cut.index(s.len().min(3000));
        let mut data = s[..at].to_vec();
        data.extend_from_slice(&noise);
        data.extend_from_slice(&s[at..s.len().min(at + 2000)]);
        let mut a = frame::Deframer::<512>::new();
        let mut by_push = Vec::new();
        for &b in &data {
            match a.push(b) {
                frame::FrameEvent::Pending => {}
                frame::FrameEvent::Frame { user_data, offset } => by_push.push((offset, Ok(user_data.to_vec()))),
                frame::FrameEvent::Rejected { offset, error } => by_push.push((offset, Err(error))),
            }
        }
        let mut b = frame::Deframer::<512>::new();
        let mut by_feed = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let (n, ev) = b.feed(rest);
            prop_assert!(n > 0);
            rest = &rest[n..];
            match ev {
                frame::FrameEvent::Pending => {}
                frame::FrameEvent::Frame { user_data, offset } => by_feed.push((offset, Ok(user_data.to_vec()))),
                frame::FrameEvent::Rejected { offset, error } => by_feed.push((offset, Err(error))),
            }
        }
        prop_assert_eq!(a.offset(), b.offset());
        prop_assert_eq!(by_push, by_feed);
    }

    #[test]
    fn framing_round_trip(data in prop::collection::vec(any::<u8>(), 0..1200)) {
        let f = frame::encode_vec(&data);
        prop_assert_eq!(f.first(), Some(&frame::BOF));
        prop_assert_eq!(f.last(), Some(&frame::EOF));
        prop_assert!(!f[1..f.len() - 1].iter().any(|b| *b == frame::BOF || *b == frame::EOF));
        let mut d = frame::Deframer::<2048>::new();
        let mut got = Vec::new();
        for &b in &f {
            match d.push(b) {
                frame::FrameEvent::Frame { user_data, offset } => {
                    prop_assert_eq!(offset, 0);
                    got.push(user_data.to_vec());
                }
                frame::FrameEvent::Rejected { error, .. } => prop_assert!(false, "{error:?}"),
                frame::FrameEvent::Pending => {}
            }
        }
        prop_assert_eq!(got, vec![data.clone()]);
        let mut esc = vec![0u8; 2 * data.len()];
        let n = frame::escape(&data, &mut esc).unwrap();
        let mut back = vec![0u8; data.len()];
        let m = frame::unescape(&esc[..n], &mut back).unwrap();
        prop_assert_eq!(&back[..m], &data[..]);
    }
}
