//! Quality, provenance and status of a value: the flags, absent reasons and statuses shared by
//! the canonical observation (alloc) and the firmware's link frames (no alloc).

use serde::{Deserialize, Serialize};

/// Quality and provenance flags. JSON writes the documented names (see [`Flags::NAMES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u32);

macro_rules! flags {
    ($($(#[$doc:meta])* $name:ident = $bit:expr, $text:expr;)*) => {
        impl Flags {
            $($(#[$doc])* pub const $name: Flags = Flags(1 << $bit);)*
            /// Every flag with its name in the canonical JSON form (docs/canonical-json.md).
            pub const NAMES: &'static [(Flags, &'static str)] = &[$((Flags::$name, $text)),*];
        }
    };
}

flags! {
    /// The sensor is off the patient or disconnected (Nonin SNSA, Masimo "Sensor Off").
    SENSOR_OFF = 0, "sensor-off";
    /// The device marks the value as disturbed by motion or interference (Nonin ARTF).
    ARTIFACT = 1, "artifact";
    /// The oximeter lost the pulse (Nonin OOT).
    OUT_OF_TRACK = 2, "out-of-track";
    /// Low perfusion at the sensor site (Nonin LPRF/red perfusion, Masimo EXC 0x4).
    LOW_PERFUSION = 3, "low-perfusion";
    /// The device says the value is questionable (11073 MeasurementStatus, PLX bit 14).
    QUESTIONABLE = 4, "questionable";
    /// The device reported no valid value (sentinels, NaN, "---").
    UNAVAILABLE = 5, "unavailable";
    /// The value is outside the device's measurement range (±INF, off-scale).
    OUT_OF_RANGE = 6, "out-of-range";
    /// The device marks the value invalid (11073 MeasurementStatus invalid).
    INVALID = 7, "invalid";
    /// Marginal perfusion (Nonin MPRF/yellow).
    MARGINAL_PERFUSION = 8, "marginal-perfusion";
    LOW_BATTERY = 9, "low-battery";
    /// The device is calibrating; values may not be clinical.
    CALIBRATING = 10, "calibrating";
    /// Demonstration data from the device's demo mode: never a patient's value.
    DEMO = 11, "demo";
    /// Test data (device test mode).
    TEST = 12, "test";
    /// An early estimate that may still change (PLX "early estimate", "ongoing").
    EARLY_ESTIMATE = 13, "early-estimate";
    /// Recorded while the link was down and sent later from the device's memory.
    FROM_STORAGE = 14, "from-storage";
    /// The oximeter is searching for a pulse (Masimo EXC 0x8).
    PULSE_SEARCH = 15, "pulse-search";
    /// The device says its signal quality is low (Masimo low signal IQ).
    LOW_SIGNAL_QUALITY = 16, "low-signal-quality";
    /// A physiological or technical alarm was active on the device for this value.
    ALARM = 17, "alarm";
    /// A record from the device's memory whose device clock is off by more than 1 s: its
    /// `device_time` is the device's time corrected by the estimated clock offset (on the
    /// gateway's clock) and is the effective time. Never the time it was downloaded.
    TIME_CORRECTED = 18, "time-corrected";
    /// The device's clock differs from the gateway's by more than 1 s (IHE Consistent Time);
    /// the effective time is the gateway's receipt time.
    CLOCK_SKEW = 24, "clock-skew";
    /// The device sends no time; the effective time is the gateway's receipt time.
    NO_DEVICE_CLOCK = 25, "no-device-clock";
    /// The device sends local time without a zone; the configured zone was assumed.
    ZONE_ASSUMED = 26, "zone-assumed";
    /// The device says its clock was never set (PLX/GATT "device clock not set").
    CLOCK_NOT_SET = 27, "clock-not-set";
    /// The device's code is not mapped to an MDC code: add it to the nomenclature override.
    UNMAPPED = 28, "unmapped";
}

impl Flags {
    pub const NONE: Flags = Flags(0);

    /// Flags that say the effective time is the gateway's, not the device's.
    pub const TIME_FROM_GATEWAY: Flags = Flags(Flags::CLOCK_SKEW.0 | Flags::NO_DEVICE_CLOCK.0 | Flags::CLOCK_NOT_SET.0);

    /// Flags that make a value that is present questionable: the device says so, or it shows a
    /// number while the sensor is off (a Nonin holds the last display value for about 10 s after
    /// the finger is removed), while it searches for the pulse, with motion artefact, lost pulse,
    /// low perfusion or low signal quality. Encoders mark such a value (HL7 OBX-8 `QUES`, FHIR
    /// `interpretation`) so that a receiver does not chart it as a clean reading.
    pub const QUESTIONABLE_VALUE: Flags = Flags(
        Flags::QUESTIONABLE.0
            | Flags::SENSOR_OFF.0
            | Flags::PULSE_SEARCH.0
            | Flags::ARTIFACT.0
            | Flags::OUT_OF_TRACK.0
            | Flags::LOW_PERFUSION.0
            | Flags::LOW_SIGNAL_QUALITY.0,
    );

    pub const fn contains(&self, other: Flags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub const fn intersects(&self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The names of the flags that are set, in bit order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        Flags::NAMES.iter().filter(|(f, _)| self.contains(*f)).map(|(_, n)| *n)
    }

    pub fn from_name(name: &str) -> Option<Flags> {
        Flags::NAMES.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_seq(self.names())
        } else {
            serializer.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Flags, D::Error> {
        use serde::de::Error as _;
        if deserializer.is_human_readable() {
            #[cfg(feature = "alloc")]
            {
                let names: alloc::vec::Vec<alloc::borrow::Cow<'de, str>> = Deserialize::deserialize(deserializer)?;
                let mut flags = Flags::NONE;
                for n in names {
                    flags |= Flags::from_name(&n).ok_or_else(|| D::Error::custom(alloc::format!("unknown flag {n:?}")))?;
                }
                Ok(flags)
            }
            #[cfg(not(feature = "alloc"))]
            Err(D::Error::custom("flag names need the alloc feature"))
        } else {
            Ok(Flags(u32::deserialize(deserializer)?))
        }
    }
}

/// Why a value is absent. Maps to FHIR `dataAbsentReason` and HL7 OBX-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbsentReason {
    /// The device sent its "no value" sentinel (Nonin 127/511, Masimo `---`, PLX unavailable).
    Unavailable,
    /// IEEE 11073-20601 NaN.
    NotANumber,
    /// IEEE 11073-20601 NRes: not representable at this resolution.
    NotAtThisResolution,
    PositiveInfinity,
    NegativeInfinity,
    /// A reserved special value of the float format.
    Reserved,
    /// The device flagged the measurement as failed or invalid.
    Error,
}

/// FHIR `Observation.status` (R4 ObservationStatus) and HL7 OBX-11.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    #[default]
    Final,
    /// The device says the value may still change (measurement ongoing, early estimate).
    Preliminary,
}
