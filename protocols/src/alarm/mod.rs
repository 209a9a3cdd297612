//! Alarms and technical alerts, as the devices report them (issue 16).
//!
//! medgw is never the primary alarm system: the bedside device is. This module carries what the
//! device says about its alarm conditions, as completely as the protocol allows, and says so
//! when it cannot (an unknown priority is `None`, never a guess).
//!
//! Layers:
//! - a decoder turns the device's alarm words or lists into an [`AlarmReport`]: the complete set
//!   of conditions the device reports active at one moment (a Masimo line, a Nonin frame, a
//!   MEDIBUS alarm response, an IntelliVue alert-monitor list), carried by
//!   [`crate::decode::Event::Alarms`];
//! - the [`tracker::AlarmTracker`] (one per device, sans-IO) compares successive reports and
//!   emits [`AlarmEvent`]s with stable ids: `start`, `update`, and exactly one `end` per start:
//!   when the condition clears, when the device disconnects (with the reason) and when the
//!   gateway stops;
//! - encoders write an event as IHE PCD-04 (`crate::encode::pcd04`), FHIR R4
//!   `Communication` (`crate::encode::fhir_alarm`) or canonical JSON
//!   (`crate::encode::canonical_alarm`).
//!
//! Codes: an alarm's identity is its MDC event code (IEEE 11073-10101 partition 3, EVT) when
//! one is confirmed ([`codes`]), else [`MdcCode::UNMAPPED`] with the vendor code, which is
//! always kept.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::decimal::Decimal;
use crate::mdc::MdcCode;
use crate::observation::VendorCode;
use crate::time::DeviceTime;

pub mod codes;
pub mod flags;
pub mod tracker;

pub use tracker::AlarmTracker;

/// IHE PCD ACM alert type (PCD TF-2, ALERT_TYPE facet: `SP`, `ST`, `SA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmKind {
    /// About the patient (a limit violation, an arrhythmia).
    Physiological,
    /// About the equipment (sensor off, low battery, lead off, no signal).
    Technical,
    /// Information that needs no prompt action.
    Advisory,
}

impl AlarmKind {
    /// The ACM ALERT_TYPE value.
    pub const fn ihe(self) -> &'static str {
        match self {
            AlarmKind::Physiological => "SP",
            AlarmKind::Technical => "ST",
            AlarmKind::Advisory => "SA",
        }
    }
}

/// Alarm priority (IHE PCD ACM PRIORITY facet `PN`/`PL`/`PM`/`PH`; IEC 60601-1-8 low, medium,
/// high). A device that does not say has `None` on the condition, not a guessed level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// "No alarm": an alert without alarm signal (PN).
    NoAlarm,
    Low,
    Medium,
    High,
}

impl Priority {
    pub const fn ihe(self) -> &'static str {
        match self {
            Priority::NoAlarm => "PN",
            Priority::Low => "PL",
            Priority::Medium => "PM",
            Priority::High => "PH",
        }
    }
}

/// ACM ALARM_STATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmState {
    Active,
    /// The condition is gone but the device keeps the alarm signal until acknowledged.
    Latched,
    /// Sent with `end`.
    Inactive,
}

impl AlarmState {
    pub const fn ihe(self) -> &'static str {
        match self {
            AlarmState::Active => "active",
            AlarmState::Latched => "latched",
            AlarmState::Inactive => "inactive",
        }
    }
}

/// ACM INACTIVATION_STATE: what the device did to the alarm signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Inactivation {
    #[default]
    Enabled,
    AudioPaused,
    AudioOff,
    AlarmPaused,
    AlarmOff,
    Acknowledged,
}

impl Inactivation {
    pub const fn ihe(self) -> &'static str {
        match self {
            Inactivation::Enabled => "enabled",
            Inactivation::AudioPaused => "audio-paused",
            Inactivation::AudioOff => "audio-off",
            Inactivation::AlarmPaused => "alarm-paused",
            Inactivation::AlarmOff => "alarm-off",
            Inactivation::Acknowledged => "alert-acknowledged",
        }
    }
}

/// ACM EVENT_PHASE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Start,
    Update,
    End,
}

impl Phase {
    pub const fn ihe(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Update => "update",
            Phase::End => "end",
        }
    }
}

/// Why an alarm ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum EndReason {
    /// The device no longer reports the condition.
    Cleared,
    /// The connection to the device was lost; the device may still be alarming. The text says
    /// why (`silent`, `closed`, ...).
    Disconnected(String),
    /// The gateway stopped; the device may still be alarming.
    Shutdown,
}

/// The alarm limits in force when the alarm was raised, when the device says them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    pub low: Option<Decimal>,
    pub high: Option<Decimal>,
}

/// One alarm condition as the device reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmCondition {
    /// MDC event code (partition 3), or [`MdcCode::UNMAPPED`].
    pub code: MdcCode,
    /// The device's own identification of the condition: the identity within the device,
    /// together with [`AlarmCondition::source`].
    pub vendor: VendorCode,
    /// The metric the alarm is about (MDC, partition 2), [`MdcCode::UNMAPPED`] for the device
    /// as a whole or an unmapped metric.
    pub source: MdcCode,
    pub kind: AlarmKind,
    /// `None`: the protocol does not carry a priority medgw can map.
    pub priority: Option<Priority>,
    /// The device's own priority number where it has one (MEDIBUS 1–31, IntelliVue AlertType).
    pub device_priority: Option<u16>,
    pub state: AlarmState,
    pub inactivation: Inactivation,
    /// The device's text for the alarm, or medgw's name for the bit.
    pub text: String,
    /// The triggering value, when the same message carries it.
    pub value: Option<Decimal>,
    /// The value's unit (MDC partition 4), [`MdcCode::UNMAPPED`] without a value.
    pub unit: MdcCode,
    pub limits: Option<Limits>,
}

impl AlarmCondition {
    /// A condition with the fields every protocol sets; the rest at their defaults (no
    /// priority, active, enabled, no value or limits).
    pub fn new(code: MdcCode, vendor: VendorCode, source: MdcCode, kind: AlarmKind, text: impl Into<String>) -> AlarmCondition {
        AlarmCondition {
            code,
            vendor,
            source,
            kind,
            priority: None,
            device_priority: None,
            state: AlarmState::Active,
            inactivation: Inactivation::Enabled,
            text: text.into(),
            value: None,
            unit: MdcCode::UNMAPPED,
            limits: None,
        }
    }

    pub fn with_priority(mut self, p: Option<Priority>) -> AlarmCondition {
        self.priority = p;
        self
    }

    pub fn with_value(mut self, value: Option<Decimal>, unit: MdcCode) -> AlarmCondition {
        self.value = value;
        self.unit = if value.is_some() { unit } else { MdcCode::UNMAPPED };
        self
    }

    /// Whether the code is an MDC event code (else only the vendor code identifies it).
    pub fn is_mapped(&self) -> bool {
        !self.code.is_unmapped()
    }
}

/// Which alarms a report is complete for: a condition of that scope missing from the report
/// has ended. IntelliVue sends its physiological and technical lists as separate attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportScope {
    All,
    Physiological,
    /// Technical alerts and advisories.
    Technical,
}

impl ReportScope {
    pub fn covers(self, kind: AlarmKind) -> bool {
        match self {
            ReportScope::All => true,
            ReportScope::Physiological => kind == AlarmKind::Physiological,
            ReportScope::Technical => kind != AlarmKind::Physiological,
        }
    }
}

/// The complete set of conditions of `scope` that the device reports active at one moment.
/// An empty list means "none active".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmReport {
    pub scope: ReportScope,
    pub conditions: Vec<AlarmCondition>,
    pub device_time: Option<DeviceTime>,
}

impl AlarmReport {
    pub fn new(scope: ReportScope, conditions: Vec<AlarmCondition>) -> AlarmReport {
        AlarmReport { scope, conditions, device_time: None }
    }
}

pub use tracker::AlarmEvent;
