//! The [`Decoder`]s of the GATT characteristics: each `feed` call is one characteristic value
//! (one notification, indication or read response), never a piece of a byte stream.
//!
//! There is nothing to resynchronise: ATT delivers values whole. A malformed value is one
//! `Event::Rejected` whose offset is the stream offset (bytes fed since creation) of the
//! value's first byte; the next value decodes normally. Feeding a value in pieces is a caller
//! error (`ProtocolInfo::gatt` says so): each piece is judged as a whole value, so the
//! chunking property of the stream decoders does not apply here.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::decode::{push_event, Decoder, DecoderOptions, Event, ProtocolInfo};
use crate::error::Result;
use crate::observation::Measurement;
use crate::time::Timestamp;

use super::{blood_pressure, glucose, heart_rate, plx, thermometer, weight};

/// Which characteristic a decoder reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GattKind {
    HeartRate,
    PlxSpotCheck,
    PlxContinuous,
    BloodPressure,
    Temperature,
    Weight,
    Glucose,
}

impl GattKind {
    pub const ALL: [GattKind; 7] = [
        GattKind::HeartRate,
        GattKind::PlxSpotCheck,
        GattKind::PlxContinuous,
        GattKind::BloodPressure,
        GattKind::Temperature,
        GattKind::Weight,
        GattKind::Glucose,
    ];

    /// The protocol name used in configuration and `medgw decode --protocol`.
    pub const fn protocol(self) -> &'static str {
        match self {
            GattKind::HeartRate => "gatt-heart-rate",
            GattKind::PlxSpotCheck => "gatt-plx-spot",
            GattKind::PlxContinuous => "gatt-plx-continuous",
            GattKind::BloodPressure => "gatt-blood-pressure",
            GattKind::Temperature => "gatt-temperature",
            GattKind::Weight => "gatt-weight",
            GattKind::Glucose => "gatt-glucose",
        }
    }

    /// The characteristic's 16-bit UUID.
    pub const fn uuid(self) -> u16 {
        use super::uuid::*;
        match self {
            GattKind::HeartRate => HEART_RATE_MEASUREMENT,
            GattKind::PlxSpotCheck => PLX_SPOT_CHECK_MEASUREMENT,
            GattKind::PlxContinuous => PLX_CONTINUOUS_MEASUREMENT,
            GattKind::BloodPressure => BLOOD_PRESSURE_MEASUREMENT,
            GattKind::Temperature => TEMPERATURE_MEASUREMENT,
            GattKind::Weight => WEIGHT_MEASUREMENT,
            GattKind::Glucose => GLUCOSE_MEASUREMENT,
        }
    }

    pub fn from_protocol(name: &str) -> Option<GattKind> {
        GattKind::ALL.into_iter().find(|k| k.protocol() == name)
    }

    /// Parses one value and appends its measurements (the normalisation of each
    /// characteristic is documented on its `measurements` function).
    pub fn decode(self, value: &[u8], out: &mut Vec<Measurement>) -> Result<()> {
        self.decode_each(value, &mut |m| out.push(m))
    }

    /// [`Self::decode`], handing each measurement to `out`.
    pub fn decode_each<F: FnMut(Measurement) + ?Sized>(self, value: &[u8], out: &mut F) -> Result<()> {
        match self {
            GattKind::HeartRate => heart_rate::HeartRate::parse(value)?.for_each_measurement(out),
            GattKind::PlxSpotCheck => plx::SpotCheck::parse(value)?.for_each_measurement(out),
            GattKind::PlxContinuous => plx::Continuous::parse(value)?.for_each_measurement(out),
            GattKind::BloodPressure => blood_pressure::BloodPressure::parse(value)?.for_each_measurement(out),
            GattKind::Temperature => thermometer::Temperature::parse(value)?.for_each_measurement(out),
            GattKind::Weight => weight::Weight::parse(value)?.for_each_measurement(out),
            GattKind::Glucose => glucose::Glucose::parse(value)?.for_each_measurement(out),
        }
        Ok(())
    }
}

/// A decoder of one GATT characteristic.
#[derive(Debug)]
pub struct GattDecoder {
    kind: GattKind,
    /// Bytes fed since creation: the offset of the next value's first byte.
    offset: u64,
    /// Glucose: the last sequence number seen, to report gaps.
    last_seq: Option<u16>,
}

impl GattDecoder {
    pub fn new(kind: GattKind) -> GattDecoder {
        GattDecoder { kind, offset: 0, last_seq: None }
    }

    pub fn kind(&self) -> GattKind {
        self.kind
    }
}

impl GattDecoder {
    /// A meter numbers its records 0, 1, 2, ... (u16, wrapping). A forward jump means records
    /// the gateway has not seen: report it so the caller can fetch them with the RACP. Smaller
    /// or equal numbers are stored records sent again (RACP report), not gaps; observation ids
    /// de-duplicate them.
    fn check_sequence(&mut self, seq: u16, out: &mut Vec<Event>) {
        match self.last_seq {
            None => self.last_seq = Some(seq),
            Some(last) => {
                let expected = last.wrapping_add(1);
                let ahead = seq.wrapping_sub(expected);
                if ahead != 0 && ahead < 0x8000 {
                    out.push(Event::SequenceGap { expected: expected as u32, found: seq as u32 });
                }
                if seq.wrapping_sub(last) < 0x8000 {
                    self.last_seq = Some(seq);
                }
            }
        }
    }
}

impl Decoder for GattDecoder {
    fn protocol(&self) -> &'static str {
        self.kind.protocol()
    }

    /// `bytes` is one whole characteristic value. `now` is not needed: a value carries its own
    /// time stamp or none (the gateway adds the receipt time).
    fn feed(&mut self, bytes: &[u8], _now: Timestamp, out: &mut Vec<Event>) {
        let start = self.offset;
        self.offset += bytes.len() as u64;
        let result = if self.kind == GattKind::Glucose {
            glucose::Glucose::parse(bytes).map(|g| {
                self.check_sequence(g.sequence, out);
                g.for_each_measurement(&mut |m| push_event(out, Event::Measurement(m)));
            })
        } else {
            self.kind.decode_each(bytes, &mut |m| push_event(out, Event::Measurement(m)))
        };
        if let Err(error) = result {
            out.push(Event::Rejected { offset: start, error });
        }
    }

    /// A reconnect starts a new session: nothing is buffered, only the glucose sequence
    /// memory is kept (the meter's numbering survives a reconnect).
    fn start(&mut self, _now: Timestamp, _out: &mut Vec<Event>) {}
}

fn make(kind: GattKind) -> Box<dyn Decoder> {
    Box::new(GattDecoder::new(kind))
}

macro_rules! row {
    ($kind:ident, $desc:expr) => {
        ProtocolInfo {
            name: GattKind::$kind.protocol(),
            description: $desc,
            serial: None,
            gatt: true,
            make: |_: &DecoderOptions| make(GattKind::$kind),
        }
    };
}

/// The GATT protocols, one row per characteristic.
pub const PROTOCOLS: &[ProtocolInfo] = &[
    row!(HeartRate, "Bluetooth Heart Rate Measurement (0x2A37): heart rate, RR intervals, energy expended"),
    row!(PlxSpotCheck, "Bluetooth PLX Spot-Check Measurement (0x2A5E): SpO2, pulse rate, PAI"),
    row!(PlxContinuous, "Bluetooth PLX Continuous Measurement (0x2A5F): SpO2, pulse rate (normal/fast/slow), PAI"),
    row!(BloodPressure, "Bluetooth Blood Pressure Measurement (0x2A35): NIBP sys/dia/mean, pulse rate"),
    row!(Temperature, "Bluetooth Temperature Measurement (0x2A1C): body temperature"),
    row!(Weight, "Bluetooth Weight Measurement (0x2A9D): body weight, BMI, height"),
    row!(Glucose, "Bluetooth Glucose Measurement (0x2A18): blood glucose with sequence number"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn rejected_offset_is_the_value_start() {
        let mut d = GattDecoder::new(GattKind::HeartRate);
        let mut ev = Vec::new();
        d.feed(&[0x06, 0x48], Timestamp(0), &mut ev);
        d.feed(&[0x01, 0x48], Timestamp(0), &mut ev);
        d.feed(&[0x06, 0x49], Timestamp(0), &mut ev);
        assert!(matches!(ev[0], Event::Measurement(_)));
        assert_eq!(ev[1], Event::Rejected { offset: 2, error: Error::Truncated { needed: 3, got: 2 } });
        assert!(matches!(ev[2], Event::Measurement(_)));
    }

    #[test]
    fn registry_rows() {
        assert_eq!(PROTOCOLS.len(), 7);
        for p in PROTOCOLS {
            assert!(p.gatt && p.serial.is_none());
            assert_eq!((p.make)(&DecoderOptions::default()).protocol(), p.name);
            assert_eq!(GattKind::from_protocol(p.name).map(|k| k.protocol()), Some(p.name));
        }
    }

    #[test]
    fn glucose_gaps() {
        let mut d = GattDecoder::new(GattKind::Glucose);
        let mut ev = Vec::new();
        let rec = |seq: u16| {
            let mut b = [0x00, 0, 0, 0xE8, 0x07, 3, 15, 8, 30, 0];
            b[1..3].copy_from_slice(&seq.to_le_bytes());
            b
        };
        for s in [7u16, 8, 11, 9, 12] {
            d.feed(&rec(s), Timestamp(0), &mut ev);
        }
        let gaps: Vec<_> = ev.iter().filter(|e| matches!(e, Event::SequenceGap { .. })).collect();
        assert_eq!(gaps, [&Event::SequenceGap { expected: 9, found: 11 }]);
        let seqs: Vec<_> = ev.iter().filter_map(|e| if let Event::Measurement(m) = e { m.seq } else { None }).collect();
        assert_eq!(seqs, [7, 8, 11, 9, 12]);
    }
}
