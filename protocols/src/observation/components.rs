//! The members of a compound value, without a heap allocation for the commonest size.
//!
//! A heart-rate notification carries one RR interval most of the time (one beat per second at
//! rest), and decoding it must not cost an allocation and a free per value: GATT values are a
//! few bytes, and building the `Vec` plus malloc and free were about a quarter of the
//! heart-rate decoder's time (perf). One member is kept inline;
//! more (a blood pressure's three, a burst of RR intervals: up to 255 in one 512-byte ATT
//! value) spill to a `Vec`, so nothing is ever truncated.
//!
//! Why only one inline: [`Component`] is 32 bytes, and `Value` is 40 bytes because of its
//! other variants (`Enumeration`, `Waveform`: 32 bytes each, plus the tag). One component fits
//! in that room, so `Value`, `Measurement` and `Event` keep their size; two would make every
//! measurement 40 bytes larger, and a measurement is moved several times per reading.
//!
//! Everywhere else it reads as a slice (`Deref<Target = [Component]>`), and serde sees a
//! sequence of `Component`, exactly as it saw the `Vec<Component>` this replaces: the durable
//! buffer's postcard records and the canonical JSON are unchanged.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Component;

/// The members of a compound value (systolic, diastolic, mean; RR intervals), in order.
#[derive(Clone, Default)]
pub struct Components(Repr);

#[derive(Clone)]
enum Repr {
    One(Component),
    /// Zero, or two and more.
    Many(Vec<Component>),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Many(Vec::new())
    }
}

impl Components {
    /// No members (no allocation).
    pub const fn new() -> Components {
        Components(Repr::Many(Vec::new()))
    }

    /// One member, inline.
    pub const fn one(c: Component) -> Components {
        Components(Repr::One(c))
    }

    pub fn as_slice(&self) -> &[Component] {
        match &self.0 {
            Repr::One(c) => core::slice::from_ref(c),
            Repr::Many(v) => v,
        }
    }

    /// Appends a member; the second one moves both to the heap.
    pub fn push(&mut self, c: Component) {
        match &mut self.0 {
            Repr::Many(v) if v.is_empty() && v.capacity() == 0 => self.0 = Repr::One(c),
            Repr::Many(v) => v.push(c),
            Repr::One(_) => {
                let Repr::One(first) = core::mem::take(&mut self.0) else { return };
                let mut v = Vec::with_capacity(4);
                v.push(first);
                v.push(c);
                self.0 = Repr::Many(v);
            }
        }
    }

    /// The members as a `Vec` (allocates for an inline member).
    pub fn into_vec(self) -> Vec<Component> {
        match self.0 {
            Repr::One(c) => alloc::vec![c],
            Repr::Many(v) => v,
        }
    }
}

impl Deref for Components {
    type Target = [Component];
    fn deref(&self) -> &[Component] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a Components {
    type Item = &'a Component;
    type IntoIter = core::slice::Iter<'a, Component>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl FromIterator<Component> for Components {
    /// One member stays inline; with more, the `Vec` is sized from the iterator's hint.
    fn from_iter<I: IntoIterator<Item = Component>>(iter: I) -> Components {
        let mut iter = iter.into_iter();
        let Some(first) = iter.next() else { return Components::new() };
        let Some(second) = iter.next() else { return Components::one(first) };
        let mut v = Vec::with_capacity(iter.size_hint().0.saturating_add(2));
        v.push(first);
        v.push(second);
        v.extend(iter);
        Components(Repr::Many(v))
    }
}

impl From<Vec<Component>> for Components {
    /// Takes the `Vec` as it is (no copy, no allocation).
    fn from(v: Vec<Component>) -> Components {
        Components(Repr::Many(v))
    }
}

impl<const N: usize> From<[Component; N]> for Components {
    /// One member inline; more in one allocation of exactly `N`, copied in one go.
    fn from(a: [Component; N]) -> Components {
        if N == 1 {
            return a.into_iter().collect();
        }
        Components(Repr::Many(Vec::from(a)))
    }
}

/// Equal when the members are, wherever they are stored.
impl PartialEq for Components {
    fn eq(&self, other: &Components) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Components {}

impl PartialEq<Vec<Component>> for Components {
    fn eq(&self, other: &Vec<Component>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// As a `Vec` prints: `[Component { .. }, ..]`.
impl fmt::Debug for Components {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A sequence of known length, element by element: the same calls, hence the same bytes, as
/// serde's `Vec<Component>` (postcard: a varint length, then each member).
impl Serialize for Components {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for Components {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Components, D::Error> {
        struct Seq;
        impl<'de> Visitor<'de> for Seq {
            type Value = Components;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of components")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Components, A::Error> {
                let mut out = Components::new();
                while let Some(c) = seq.next_element()? {
                    out.push(c);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use crate::mdc::{code, unit, MdcCode};
    use crate::observation::{Enumeration, Reading, Scalar, Value, Waveform};
    use crate::quality::{AbsentReason, Flags, Status};
    use crate::time::Timestamp;
    use proptest::prelude::*;

    fn c(metric: MdcCode, v: Option<i64>) -> Component {
        Component {
            metric,
            value: match v {
                Some(m) => Scalar::Numeric(Decimal::new(m, -2).unwrap()),
                None => Scalar::Absent(AbsentReason::NotANumber),
            },
        }
    }

    fn bp() -> [Component; 3] {
        [
            c(code::MDC_PRESS_BLD_NONINV_SYS, Some(12_000)),
            c(code::MDC_PRESS_BLD_NONINV_DIA, Some(8_000)),
            c(code::MDC_PRESS_BLD_NONINV_MEAN, None),
        ]
    }

    /// `Value` as it was before `Components`, variant for variant: what the durable buffer
    /// holds from earlier versions.
    #[derive(Serialize, Deserialize)]
    enum OldValue {
        Numeric(Decimal),
        Absent(AbsentReason),
        Compound(Vec<Component>),
        Enumeration(Enumeration),
        Waveform(Waveform),
    }

    fn reading(value: Value) -> Reading {
        Reading {
            id: uuid::Uuid::nil(),
            metric: code::MDC_PRESS_BLD_NONINV,
            vendor: None,
            value,
            unit: unit::MDC_DIM_MMHG,
            device_time: Some(Timestamp(1_710_498_125_000)),
            receipt_time: Timestamp(1_710_498_125_300),
            seq: None,
            flags: Flags::NONE,
            status: Status::Final,
        }
    }

    #[test]
    fn one_member_is_inline_and_more_spill_to_the_heap() {
        let [a, b, m] = bp();
        let mut x = Components::new();
        assert!(x.is_empty());
        x.push(a.clone());
        assert!(matches!(x.0, Repr::One(_)));
        x.push(b.clone());
        x.push(m.clone());
        assert!(matches!(&x.0, Repr::Many(v) if v.len() == 3));
        assert_eq!(x.as_slice(), &bp()[..]);
        assert!(matches!([a.clone()].into_iter().collect::<Components>().0, Repr::One(_)));
        assert!(matches!(Components::from([a.clone()]).0, Repr::One(_)));
        // Where the members are stored does not change equality.
        assert_eq!(Components::from(alloc::vec![a.clone()]), Components::one(a.clone()));
        assert_ne!(Components::one(a.clone()), Components::one(b));
        assert_eq!(Components::from(bp()).into_vec(), bp().to_vec());
        assert_eq!(Components::one(a.clone()).into_vec(), alloc::vec![a]);
    }

    #[test]
    fn a_long_burst_is_kept_whole() {
        // 255 RR intervals: as many as one 512-byte ATT value can carry. Never truncated.
        let many: Vec<Component> = (0..255).map(|i| c(code::MDC_PRESS_BLD_NONINV_SYS, Some(i))).collect();
        let x: Components = many.iter().cloned().collect();
        assert_eq!(x.len(), 255);
        assert_eq!(x, many);
    }

    #[test]
    fn postcard_bytes_are_those_of_the_vec_it_replaced() {
        let cases: [Vec<Component>; 4] = [Vec::new(), bp()[..1].to_vec(), bp()[..2].to_vec(), bp().to_vec()];
        for members in cases {
            let new = Components::from_iter(members.iter().cloned());
            assert_eq!(postcard::to_allocvec(&new).unwrap(), postcard::to_allocvec(&members).unwrap());
            // A whole stored reading, against the old `Value` layout.
            let value = Value::Compound(new.clone());
            let bytes = postcard::to_allocvec(&reading(value.clone())).unwrap();
            let old = postcard::to_allocvec(&OldValue::Compound(members.clone())).unwrap();
            assert_eq!(postcard::to_allocvec(&value).unwrap(), old);
            // Records written before the change read back as they were.
            assert_eq!(postcard::from_bytes::<Value>(&old).unwrap(), value);
            assert_eq!(postcard::from_bytes::<Reading>(&bytes).unwrap(), reading(value));
            // And the JSON (canonical encoder, status page) is the same array.
            assert_eq!(serde_json::to_string(&new).unwrap(), serde_json::to_string(&members).unwrap());
        }
    }

    #[test]
    fn pinned_postcard_bytes_of_a_compound_reading() {
        // Written by the `Vec<Component>` version; a change here would strand buffered data.
        let bytes = postcard::to_allocvec(&Value::Compound(Components::from(bp()))).unwrap();
        let hex: alloc::string::String = bytes.iter().map(|b| alloc::format!("{b:02x}")).collect();
        assert_eq!(hex, PINNED_BP_VALUE);
    }

    /// postcard of the `Vec` form, read field by field: `02` variant Compound, `03` three
    /// members; each: metric varint (`85 94 09` = 150021 MDC_PRESS_BLD_NONINV_SYS, then 150022,
    /// 150023), Scalar variant (`00` Numeric: zigzag varint mantissa `c0 bb 01` = 12000, exponent
    /// byte `fe` = -2; `01` Absent: `01` NotANumber).
    const PINNED_BP_VALUE: &str = "020385940900c0bb01fe86940900807dfe8794090101";

    #[test]
    fn sizes_stay_small() {
        use core::mem::size_of;
        // One inline member fits in the room `Value` already had for its other variants.
        assert_eq!(size_of::<Components>(), size_of::<Vec<Component>>() + 8);
        assert_eq!(size_of::<Value>(), 40);
        assert!(size_of::<crate::observation::Measurement>() <= 96);
        assert!(size_of::<crate::decode::Event>() <= 112);
    }

    fn arb_component() -> impl Strategy<Value = Component> {
        (any::<u32>(), prop::option::of(-999_999_999_999i64..999_999_999_999)).prop_map(|(m, v)| c(MdcCode(m), v))
    }

    proptest! {
        #[test]
        fn any_members_round_trip_like_a_vec(members in prop::collection::vec(arb_component(), 0..40)) {
            let x: Components = members.iter().cloned().collect();
            prop_assert_eq!(x.as_slice(), &members[..]);
            let bytes = postcard::to_allocvec(&x).unwrap();
            prop_assert_eq!(&bytes, &postcard::to_allocvec(&members).unwrap());
            prop_assert_eq!(postcard::from_bytes::<Components>(&bytes).unwrap(), x.clone());
            let mut pushed = Components::new();
            for m in &members {
                pushed.push(m.clone());
            }
            prop_assert_eq!(pushed, x);
        }
    }
}
