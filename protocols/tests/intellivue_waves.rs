//! IntelliVue real-time sample arrays from bytes: extended poll results built per the Data
//! Export Programming Guide's layouts (wire/intellivue/wave.rs cites the pages; no public
//! capture of a wave poll was available), decoded into wave chunks and cut into segments.

use medgw_protocols::decimal::Decimal;
use medgw_protocols::error::Error;
use medgw_protocols::mdc::{code, unit};
use medgw_protocols::observation::Flags;
use medgw_protocols::time::Timestamp;
use medgw_protocols::wave::{Continuity, SampleMarks, SamplePeriod, Segmenter, SegmenterConfig, WaveChunk};
use medgw_protocols::wire::intellivue::attributes::{
    write_attribute_list, write_ava, AbsoluteTime, AttributeList, MeasurementState, RelativeTime,
};
use medgw_protocols::wire::intellivue::pdu::{
    action, class, command, encode_ext_poll_request, parse_apdu, ro, write_action_result, write_operation, ActionArgument, ActionResult,
    Apdu, ManagedObjectId, PollReply, PollRequest,
};
use medgw_protocols::wire::intellivue::wave::{
    fixed, id, physio, write_fixed_values, FixedValue, RtsaDecoder, SaObsValue, SaSpec, ScaleRangeSpec16,
};
use medgw_protocols::wire::intellivue::Writer;
use medgw_protocols::wire::sfloat::encode_float;
use proptest::prelude::*;

const BASE: Timestamp = Timestamp(1_795_602_600_000);
const NOM_DIM_MILLI_VOLT: u16 = 4274;
/// 2 ms in RelativeTime ticks (125 µs): 500 samples/s.
const ECG_TICKS: u32 = 16;

#[derive(Clone)]
enum Attr {
    Period(u32),
    Spec(SaSpec),
    Scale(&'static str, &'static str, u16, u16),
    Unit(u16),
    Masks(Vec<FixedValue>),
    Samples(u16, u16, Vec<u16>),
    Compound(Vec<(u16, Vec<u16>)>),
    Raw(u16, Vec<u8>),
}

fn write_attr(w: &mut Writer<'_>, a: &Attr) -> medgw_protocols::error::Result<()> {
    match a {
        Attr::Period(t) => write_ava(w, id::NOM_ATTR_TIME_PD_SAMP, |w| w.u32(*t)),
        Attr::Spec(s) => write_ava(w, id::NOM_ATTR_SA_SPECN, |w| s.write(w)),
        Attr::Scale(lo, hi, ls, us) => write_ava(w, id::NOM_ATTR_SCALE_SPECN_I16, |w| {
            ScaleRangeSpec16 {
                lower_absolute: encode_float(lo.parse().unwrap()).unwrap(),
                upper_absolute: encode_float(hi.parse().unwrap()).unwrap(),
                lower_scaled: *ls,
                upper_scaled: *us,
            }
            .write(w)
        }),
        Attr::Unit(u) => write_ava(w, id::NOM_ATTR_UNIT_CODE, |w| w.u16(*u)),
        Attr::Masks(m) => write_ava(w, id::NOM_ATTR_SA_FIXED_VAL_SPECN, |w| write_fixed_values(w, m)),
        Attr::Samples(physio_id, state, samples) => write_ava(w, id::NOM_ATTR_SA_VAL_OBS, |w| {
            let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_be_bytes()).collect();
            SaObsValue { physio_id: *physio_id, state: MeasurementState(*state), array: &bytes }.write(w)
        }),
        Attr::Compound(leads) => write_ava(w, id::NOM_ATTR_SA_CMPD_VAL_OBS, |w| {
            w.u16(leads.len() as u16)?;
            let at = w.begin_len()?;
            for (physio_id, samples) in leads {
                let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_be_bytes()).collect();
                SaObsValue { physio_id: *physio_id, state: MeasurementState(0), array: &bytes }.write(w)?;
            }
            w.end_len(at)
        }),
        Attr::Raw(i, bytes) => write_ava(w, *i, |w| w.put(bytes)),
    }
}

/// An extended poll result (RORS) for the wave object class with these objects.
fn rtsa_result(sequence_no: u16, rel_time: u32, objects: &[(u16, Vec<Attr>)]) -> Vec<u8> {
    let mut out = vec![0u8; 8192];
    let mut w = Writer::new(&mut out);
    write_operation(&mut w, ro::RORS, None, 5, command::CONFIRMED_ACTION, |w| {
        write_action_result(w, &ManagedObjectId::MDS, action::NOM_ACT_POLL_MDIB_DATA_EXT, |w| {
            w.u16(2)?; // poll number
            w.u16(sequence_no)?;
            w.u32(rel_time)?;
            w.put(&AbsoluteTime::UNSET.0)?; // not supported by the monitor (p. 62)
            medgw_protocols::wire::intellivue::wave::WAVES.write(w)?;
            w.u16(0)?; // all attributes: the context comes along (p. 287)
            w.u16(1)?; // one SingleContextPoll
            let at = w.begin_len()?;
            w.u16(0)?; // context id
            w.u16(objects.len() as u16)?;
            let at2 = w.begin_len()?;
            for (handle, attrs) in objects {
                w.u16(*handle)?;
                write_attribute_list(w, attrs.len() as u16, |w| attrs.iter().try_for_each(|a| write_attr(w, a)))?;
            }
            w.end_len(at2)?;
            w.end_len(at)
        })
    })
    .unwrap();
    let n = w.len();
    out.truncate(n);
    out
}

/// Parses a result from its bytes and decodes every object; relative time 0 is `BASE`.
fn decode(dec: &mut RtsaDecoder, bytes: &[u8], out: &mut Vec<WaveChunk>) -> Vec<Error> {
    let Apdu::Result { result, .. } = parse_apdu(&bytes[4..]).unwrap() else { panic!("not a result") };
    let ar = ActionResult::parse(result).unwrap();
    let reply = PollReply::parse(ar.action_type, ar.body).unwrap();
    assert_eq!(reply.obj_type.code, class::NOM_MOC_VMO_METRIC_SA_RT);
    let start = Timestamp(BASE.0 + reply.rel_time.as_millis() as i64);
    let mut errors = Vec::new();
    for o in reply.info.observations() {
        let (_, o) = o.unwrap();
        if let Err(e) = dec.observation(o.handle, &o.attributes, reply.rel_time, start, out) {
            errors.push(e);
        }
    }
    errors
}

fn ecg_context() -> Vec<Attr> {
    vec![
        Attr::Period(ECG_TICKS),
        Attr::Spec(SaSpec { array_size: 8, sample_size: 16, significant_bits: 14, flags: SaSpec::SA_EXT_VAL_RANGE }),
        Attr::Scale("-40.96", "40.955", 0, 16383),
        Attr::Unit(NOM_DIM_MILLI_VOLT),
        Attr::Masks(vec![
            FixedValue { id: fixed::SA_FIX_INVALID_MASK, value: 0x8000 },
            FixedValue { id: fixed::SA_FIX_PACER_MASK, value: 0x4000 },
        ]),
    ]
}

fn ecg(samples: Vec<u16>) -> Attr {
    Attr::Samples(physio::NOM_ECG_ELEC_POTL_II, 0, samples)
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn ecg_array_with_context_masks_and_scale() {
    let mut dec = RtsaDecoder::new();
    let mut out = Vec::new();
    let mut attrs = ecg_context();
    attrs.push(ecg(vec![8192, 8292, 0x4000 | 8392, 0x8000, 8000, 8100, 8192, 8192]));
    let errors = decode(&mut dec, &rtsa_result(1, 0x0001_0000, &[(0x0101, attrs)]), &mut out);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(out.len(), 1);
    let c = &out[0];
    assert_eq!((c.metric, c.metric.0), (code::MDC_ECG_ELEC_POTL_II, 131330));
    assert_eq!(c.period, SamplePeriod::from_micros(2000));
    assert_eq!(c.period.rate_hz(), d("500"));
    // Mask bits are not part of the value (SA_EXT_VAL_RANGE, 14 significant bits).
    assert_eq!(c.samples, vec![8192, 8292, 8392, 0, 8000, 8100, 8192, 8192]);
    assert_eq!(c.mark(2), SampleMarks::PACER);
    assert_eq!(c.mark(3), SampleMarks::INVALID);
    assert_eq!(c.mark(0), SampleMarks::NONE);
    assert_eq!((c.scale.unit, c.scale.factor(), c.scale.origin()), (unit::MDC_DIM_MILLI_VOLT, d("0.005"), d("-40.96")));
    assert_eq!((c.scale.min_raw, c.scale.max_raw), (0, 16383));
    assert_eq!(c.continuity, Continuity::Broken);
    assert_eq!(c.start, Timestamp(BASE.0 + 0x0001_0000 / 8));
}

#[test]
fn continuity_follows_the_relative_time_stamps() {
    let mut dec = RtsaDecoder::new();
    let mut out = Vec::new();
    let first = {
        let mut a = ecg_context();
        a.push(ecg(vec![1; 8]));
        a
    };
    let t0 = 0x0010_0000u32;
    let step = 8 * ECG_TICKS; // 8 samples of 2 ms
    assert!(decode(&mut dec, &rtsa_result(1, t0, &[(0x0101, first)]), &mut out).is_empty());
    // The next array, on time (dynamic context only: the static one came before).
    assert!(decode(&mut dec, &rtsa_result(2, t0 + step, &[(0x0101, vec![ecg(vec![2; 8])])]), &mut out).is_empty());
    // One array missing: 8 samples lost.
    assert!(decode(&mut dec, &rtsa_result(4, t0 + 3 * step, &[(0x0101, vec![ecg(vec![3; 8])])]), &mut out).is_empty());
    // Back in time (the monitor restarted its counter): unknown.
    assert!(decode(&mut dec, &rtsa_result(5, t0, &[(0x0101, vec![ecg(vec![4; 8])])]), &mut out).is_empty());
    let c: Vec<Continuity> = out.iter().map(|c| c.continuity).collect();
    assert_eq!(c, vec![Continuity::Broken, Continuity::Continuous, Continuity::Lost(8), Continuity::Broken]);
}

#[test]
fn a_scale_change_mid_stream_splits_segments_without_losing_samples() {
    let mut dec = RtsaDecoder::new();
    let mut chunks = Vec::new();
    let t0 = 0x0020_0000u32;
    let step = 8 * ECG_TICKS;
    let mut sent = Vec::new();
    for k in 0..10u32 {
        let samples: Vec<u16> = (0..8).map(|i| (1000 + k * 8 + i) as u16).collect();
        sent.extend(samples.iter().map(|s| *s as i32));
        let mut attrs = if k == 0 { ecg_context() } else { Vec::new() };
        if k == 5 {
            // The user changed the ECG gain: the monitor sends the new ScaleRangeSpec16.
            attrs.push(Attr::Scale("-20.48", "20.4775", 0, 16383));
        }
        attrs.push(ecg(samples));
        assert!(decode(&mut dec, &rtsa_result(k as u16 + 1, t0 + k * step, &[(0x0101, attrs)]), &mut chunks).is_empty());
    }
    assert_eq!(chunks[5].scale.factor(), d("0.0025"));
    assert_eq!(chunks[5].continuity, Continuity::Continuous);
    let mut seg = Segmenter::new(SegmenterConfig { segment_ms: 100, ..SegmenterConfig::default() });
    let mut segments = Vec::new();
    for c in &chunks {
        seg.push(c, &mut segments).unwrap();
    }
    seg.flush(&mut segments);
    // 40 samples (80 ms) before the change: one short segment; 40 after: another.
    assert_eq!(segments.iter().map(|s| s.samples.len()).collect::<Vec<_>>(), vec![40, 40]);
    assert_eq!(segments[0].scale.factor(), d("0.005"));
    assert_eq!(segments[1].scale.factor(), d("0.0025"));
    assert!(!segments[1].after_gap);
    assert_eq!(segments[1].start.0 - segments[0].start.0, 80);
    let joined: Vec<i32> = segments.iter().flat_map(|s| s.samples.iter().copied()).collect();
    assert_eq!(joined, sent);
}

#[test]
fn an_invalid_array_state_marks_every_sample() {
    let mut dec = RtsaDecoder::new();
    let mut out = Vec::new();
    let mut attrs = ecg_context();
    attrs.push(Attr::Samples(physio::NOM_ECG_ELEC_POTL_II, MeasurementState::INVALID, vec![5; 4]));
    assert!(decode(&mut dec, &rtsa_result(1, 0, &[(0x0101, attrs)]), &mut out).is_empty());
    assert!(out[0].marks.iter().all(|m| *m == SampleMarks::INVALID) && out[0].marks.len() == 4);
    assert!(out[0].flags.contains(Flags::INVALID));
    // The validity rule is the first octet only: a low-octet bit (in alarm) keeps samples valid.
    let mut out = Vec::new();
    let attrs = vec![Attr::Samples(physio::NOM_ECG_ELEC_POTL_II, MeasurementState::MSMT_STATE_IN_ALARM, vec![5; 4])];
    assert!(decode(&mut dec, &rtsa_result(2, 64, &[(0x0101, attrs)]), &mut out).is_empty());
    assert!(out[0].marks.is_empty());
}

#[test]
fn arrays_before_their_context_are_refused_and_the_wave_restarts_after_it() {
    let mut dec = RtsaDecoder::new();
    let mut out = Vec::new();
    let errors = decode(&mut dec, &rtsa_result(1, 0, &[(0x0101, vec![ecg(vec![1; 8])])]), &mut out);
    assert_eq!(errors, vec![Error::Unconfirmed { frames: 1 }]);
    assert!(out.is_empty());
    let mut attrs = ecg_context();
    attrs.push(ecg(vec![1; 8]));
    assert!(decode(&mut dec, &rtsa_result(2, 128, &[(0x0101, attrs)]), &mut out).is_empty());
    assert_eq!(out[0].continuity, Continuity::Broken);
}

#[test]
fn pleth_without_absolute_values_is_raw_and_saturation_has_a_side() {
    let mut dec = RtsaDecoder::new();
    let mut out = Vec::new();
    let attrs = vec![
        Attr::Period(64), // 8 ms: 125 samples/s
        Attr::Spec(SaSpec { array_size: 4, sample_size: 16, significant_bits: 12, flags: SaSpec::SA_EXT_VAL_RANGE }),
        // NaN absolute values: the wave has no absolute meaning (p. 86).
        Attr::Raw(id::NOM_ATTR_SCALE_SPECN_I16, vec![0x00, 0x7F, 0xFF, 0xFF, 0x00, 0x7F, 0xFF, 0xFF, 0x00, 0x00, 0x0F, 0xFF]),
        Attr::Masks(vec![FixedValue { id: fixed::SA_FIX_SATURATION, value: 0x2000 }]),
        Attr::Samples(physio::NOM_PLETH, 0, vec![0x2000, 2000, 0x2000 | 4095, 3000]),
    ];
    assert!(decode(&mut dec, &rtsa_result(1, 0, &[(0x0202, attrs)]), &mut out).is_empty());
    let c = &out[0];
    assert_eq!((c.metric, c.period.rate_hz()), (code::MDC_PULS_OXIM_PLETH, d("125")));
    assert_eq!((c.scale.unit, c.scale.factor(), c.scale.max_raw), (unit::MDC_DIM_DIMLESS, d("1"), 4095));
    assert_eq!(c.samples, vec![0, 2000, 4095, 3000]);
    assert_eq!((c.mark(0), c.mark(1), c.mark(2)), (SampleMarks::BELOW, SampleMarks::NONE, SampleMarks::ABOVE));
}

#[test]
fn compound_ecg_gives_one_chunk_per_lead() {
    let mut dec = RtsaDecoder::new();
    let mut out = Vec::new();
    let mut attrs = ecg_context();
    attrs[0] = Attr::Period(32); // 4 ms: 250 samples/s (p. 286)
    attrs.push(Attr::Compound(vec![(0x0101, vec![1, 2]), (physio::NOM_ECG_ELEC_POTL_II, vec![3, 4]), (0x013D, vec![5, 6])]));
    assert!(decode(&mut dec, &rtsa_result(1, 0, &[(0x0101, attrs)]), &mut out).is_empty());
    assert_eq!(out.iter().map(|c| c.metric.0).collect::<Vec<_>>(), vec![131329, 131330, 131389]);
    assert_eq!(out[1].samples, vec![3, 4]);
}

#[test]
fn malformed_wave_attributes_are_errors() {
    let mut dec = RtsaDecoder::new();
    let mut out = Vec::new();
    let mut attrs = ecg_context();
    attrs.push(Attr::Raw(id::NOM_ATTR_SA_VAL_OBS, vec![0x01, 0x02, 0x00, 0x00, 0x00, 0x03, 1, 2, 3]));
    let errors = decode(&mut dec, &rtsa_result(1, 0, &[(0x0101, attrs)]), &mut out);
    assert!(matches!(errors[..], [Error::BadField { field: "SaObsValue array length", value: 3 }]), "{errors:?}");
    let attrs = vec![Attr::Raw(id::NOM_ATTR_SA_SPECN, vec![0, 8, 16, 17, 0, 0])];
    let errors = decode(&mut dec, &rtsa_result(2, 0, &[(0x0303, attrs)]), &mut out);
    assert!(matches!(errors[..], [Error::BadField { field: "SaSpec significant bits", .. }]), "{errors:?}");
    let attrs = vec![Attr::Raw(id::NOM_ATTR_SA_FIXED_VAL_SPECN, vec![0, 2, 0, 4, 0, 1, 0x80, 0])];
    let errors = decode(&mut dec, &rtsa_result(3, 0, &[(0x0304, attrs)]), &mut out);
    assert!(matches!(errors[..], [Error::BadField { field: "SaFixedValSpec16 length", .. }]), "{errors:?}");
    let attrs = vec![Attr::Period(0)];
    assert!(!decode(&mut dec, &rtsa_result(4, 0, &[(0x0305, attrs)]), &mut out).is_empty());
    assert!(out.is_empty());
}

#[test]
fn a_whole_poll_result_decodes_every_object_even_after_a_bad_one() {
    let mut attrs = ecg_context();
    attrs.push(ecg(vec![7; 8]));
    let pleth = vec![
        Attr::Period(64),
        Attr::Spec(SaSpec { array_size: 2, sample_size: 16, significant_bits: 12, flags: 0 }),
        Attr::Scale("0", "4095", 0, 4095),
        Attr::Samples(physio::NOM_PLETH, 0, vec![100, 200]),
    ];
    let bad = vec![Attr::Raw(id::NOM_ATTR_SA_SPECN, vec![1, 2, 3])];
    let bytes = rtsa_result(3, 0x0004_0000, &[(0x0101, attrs), (0x0999, bad), (0x0202, pleth)]);
    let Apdu::Result { result, .. } = parse_apdu(&bytes[4..]).unwrap() else { panic!() };
    let ar = ActionResult::parse(result).unwrap();
    let reply = PollReply::parse(ar.action_type, ar.body).unwrap();
    let mut dec = RtsaDecoder::new();
    let mut out = Vec::new();
    let r = dec.poll_result(&reply, |t| Timestamp(BASE.0 + t.as_millis() as i64), &mut out);
    assert!(matches!(r, Err(Error::BadField { field: "SaSpec length", .. })), "{r:?}");
    assert_eq!(out.iter().map(|c| c.metric).collect::<Vec<_>>(), vec![code::MDC_ECG_ELEC_POTL_II, code::MDC_PULS_OXIM_PLETH]);
    assert!(out.iter().all(|c| c.start == Timestamp(BASE.0 + 0x0004_0000 / 8)));
}

#[test]
fn the_wave_poll_request_polls_real_time_sample_arrays_with_their_context() {
    let mut out = [0u8; 64];
    let n = encode_ext_poll_request(&mut out, 9, 4, medgw_protocols::wire::intellivue::wave::WAVES, 0).unwrap();
    let Apdu::Invoke { command: c, argument, .. } = parse_apdu(&out[4..n]).unwrap() else { panic!() };
    assert_eq!(c, command::CONFIRMED_ACTION);
    let a = ActionArgument::parse(argument).unwrap();
    assert_eq!(a.action_type, action::NOM_ACT_POLL_MDIB_DATA_EXT);
    let p = PollRequest::parse(a.action_type, a.body).unwrap();
    assert_eq!((p.obj_type.partition, p.obj_type.code, p.attr_group), (1, 9, 0));
}

proptest! {
    /// Any attribute bytes: an error or chunks, never a panic.
    #[test]
    fn arbitrary_wave_attributes_never_panic(values in prop::collection::vec((0usize..8, prop::collection::vec(any::<u8>(), 0..40)), 0..8)) {
        let ids = [
            id::NOM_ATTR_TIME_PD_SAMP, id::NOM_ATTR_SA_SPECN, id::NOM_ATTR_SCALE_SPECN_I16, id::NOM_ATTR_UNIT_CODE,
            id::NOM_ATTR_SA_FIXED_VAL_SPECN, id::NOM_ATTR_SA_VAL_OBS, id::NOM_ATTR_SA_CMPD_VAL_OBS, 0x1234,
        ];
        let mut body = Vec::new();
        for (i, v) in &values {
            body.extend(ids[*i].to_be_bytes());
            body.extend((v.len() as u16).to_be_bytes());
            body.extend(v);
        }
        let mut list = Vec::new();
        list.extend((values.len() as u16).to_be_bytes());
        list.extend((body.len() as u16).to_be_bytes());
        list.extend(body);
        let attrs = AttributeList::parse(&list).unwrap();
        let mut dec = RtsaDecoder::new();
        let mut out = Vec::new();
        for k in 0..3u32 {
            let _ = dec.observation(1, &attrs, RelativeTime(k * 100), BASE, &mut out);
        }
    }
}
