//! Fuzz target: the GATT characteristics.
//!
//! The input is split into values at arbitrary points (a length byte before each value), and
//! every value is fed to all seven decoders; each value that parses is re-encoded with `emit`,
//! must give back its own bytes (less ignored trailing bytes) and parse again to the same
//! value. The RACP request/response parsers, Date Time, Current Time, System ID and the
//! Device Information strings get the same bytes. No checksums exist to skip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medgw_protocols::decode::{Decoder, Event};
use medgw_protocols::time::Timestamp;
use medgw_protocols::wire::gatt::{
    blood_pressure::BloodPressure,
    current_time::CurrentTime,
    date_time::DateTime,
    device_info,
    glucose::{Glucose, RacpRequest, RacpResponse},
    heart_rate::HeartRate,
    plx::{Continuous, SpotCheck},
    thermometer::Temperature,
    weight::Weight,
    GattDecoder, GattKind,
};

macro_rules! round_trip {
    ($t:ty, $v:expr) => {
        if let Ok(x) = <$t>::parse($v) {
            let mut out = [0u8; 600];
            let n = x.emit(&mut out).expect("a parsed value re-encodes");
            assert_eq!(&out[..n], &$v[..n]);
            assert_eq!(<$t>::parse(&out[..n]).expect("re-parses"), x);
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let mut decoders: Vec<GattDecoder> = GattKind::ALL.iter().map(|k| GattDecoder::new(*k)).collect();
    let mut offsets = [0u64; 7];
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let (value, next) = tail.split_at(n);
        rest = next;
        for (d, off) in decoders.iter_mut().zip(offsets.iter_mut()) {
            let mut ev = Vec::new();
            d.feed(value, Timestamp(0), &mut ev);
            assert!(!ev.is_empty());
            for e in &ev {
                if let Event::Rejected { offset, .. } = e {
                    assert_eq!(*offset, *off);
                }
            }
            *off += value.len() as u64;
        }
        round_trip!(SpotCheck, value);
        round_trip!(Continuous, value);
        round_trip!(BloodPressure, value);
        round_trip!(Temperature, value);
        round_trip!(Weight, value);
        round_trip!(Glucose, value);
        round_trip!(DateTime, value);
        round_trip!(CurrentTime, value);
        if let Ok(h) = HeartRate::parse(value) {
            let mut out = [0u8; 600];
            let n = h.emit(&mut out).expect("re-encodes");
            assert_eq!(&out[..n], &value[..n]);
        }
        if let Ok(r) = RacpRequest::parse(value) {
            let mut out = [0u8; 32];
            let n = r.emit(&mut out).expect("re-encodes");
            assert_eq!(RacpRequest::parse(&out[..n]).expect("re-parses"), r);
        }
        if let Ok(r) = RacpResponse::parse(value) {
            let mut out = [0u8; 8];
            let n = r.emit(&mut out).expect("re-encodes");
            assert_eq!(&out[..n], &value[..n]);
        }
        let _ = device_info::SystemId::parse(value);
        let _ = device_info::parse_string(value);
    }
});
