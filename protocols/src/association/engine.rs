//! The per-bed timelines and the ADT event rules.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use super::bedmap::BedMap;
use crate::hl7::{AckError, AdtEvent, AdtMessage, AdtPatient, Cx, ErrorCode, Pl, Xpn};
use crate::time::Timestamp;

/// Distinct unmapped locations remembered (each is logged once); further ones are only counted.
const MAX_UNMAPPED: usize = 256;

/// A patient as the ADT feed identifies them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Patient {
    /// The key: the first PID-3 identifier of type MR with an assigning authority, else the
    /// first with an assigning authority. An identifier without one is ambiguous across systems.
    pub id: Cx,
    /// The other PID-3 identifiers.
    #[serde(default)]
    pub other_ids: Vec<Cx>,
    #[serde(default)]
    pub name: Option<Xpn>,
    /// PV1-19.
    #[serde(default)]
    pub visit: Option<Cx>,
}

fn has_authority(cx: &Cx) -> bool {
    !cx.assigning_authority.is_empty()
}

/// Two identifiers name the same patient: same id, and the same authority by namespace or OID.
fn same_identifier(a: &Cx, b: &Cx) -> bool {
    let (x, y) = (&a.assigning_authority, &b.assigning_authority);
    a.id == b.id
        && ((!x.namespace.is_empty() && x.namespace == y.namespace) || (!x.universal_id.is_empty() && x.universal_id == y.universal_id))
}

impl Patient {
    /// `None` when PID-3 has no identifier with an assigning authority.
    pub fn from_adt(p: &AdtPatient) -> Option<Patient> {
        let key = p.ids.iter().position(|c| has_authority(c) && c.id_type == "MR").or_else(|| p.ids.iter().position(has_authority))?;
        let mut other_ids = p.ids.clone();
        let id = other_ids.remove(key);
        Some(Patient { id, other_ids, name: p.name.clone(), visit: p.visit.as_ref().and_then(|v| v.visit_number.clone()) })
    }

    fn ids(&self) -> impl Iterator<Item = &Cx> {
        core::iter::once(&self.id).chain(self.other_ids.iter())
    }

    /// Whether `cx` is one of this patient's identifiers.
    pub fn has_id(&self, cx: &Cx) -> bool {
        self.ids().any(|i| same_identifier(i, cx))
    }

    /// Whether two records share an identifier (the same person).
    pub fn is(&self, other: &Patient) -> bool {
        other.ids().any(|i| self.has_id(i))
    }

    /// Whether a device's own patient id names this patient. Devices carry a bare id with no
    /// authority, so it is compared with the id part of every PID-3 identifier.
    pub fn answers_to(&self, device_id: &str) -> bool {
        self.ids().any(|i| i.id == device_id)
    }
}

/// The message that caused a change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cause {
    pub event: AdtEvent,
    pub control_id: String,
}

/// Where an attribution came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// The static `patient = {...}` of the configuration.
    Manual,
    Adt {
        cause: Cause,
    },
}

/// A bed's state over an interval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum BedState {
    Unassociated,
    Associated {
        patient: Patient,
        since: Timestamp,
        cause: Cause,
    },
    /// Discharged (A03): no patient until the next admission.
    Ended {
        patient: Patient,
        at: Timestamp,
        cause: Cause,
    },
}

impl BedState {
    fn patient(&self) -> Option<&Patient> {
        match self {
            BedState::Associated { patient, .. } => Some(patient),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Entry {
    from: Timestamp,
    state: BedState,
    /// Set when a cancel retracted the event that made this entry: it no longer counts.
    #[serde(default)]
    retracted_by: Option<String>,
}

/// One applied message, for cancels and duplicate detection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Applied {
    cause: Cause,
    at: Timestamp,
    patients: Vec<Patient>,
    /// (bed, index of the entry it pushed).
    entries: Vec<(String, usize)>,
    #[serde(default)]
    retracted: bool,
    /// A repeat of what was already so (an admit or transfer into the patient's own bed, an
    /// update): kept for duplicate detection, never the target of a cancel. A cancel after it
    /// retracts the event that did put the patient there, as the feed then means.
    #[serde(default)]
    noop: bool,
}

/// What a reading taken at some time on some bed is attributed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
// Conflict carries two patients; boxing would only move the allocation, the values are cloned anyway.
#[allow(clippy::large_enum_variant)]
pub enum Attribution {
    Patient {
        patient: Patient,
        source: Source,
    },
    Unassociated,
    /// A manual binding and an ADT association for the bed: neither is used.
    Conflict {
        manual: Patient,
        adt: Patient,
    },
    /// The device reports another patient than the ADT one: no patient is used.
    Mismatch {
        adt: Patient,
        device_reported: String,
    },
}

impl Attribution {
    /// The patient to put on an observation; `None` for everything but a clean association.
    pub fn patient(&self) -> Option<&Patient> {
        match self {
            Attribution::Patient { patient, .. } => Some(patient),
            _ => None,
        }
    }
}

/// Every change, for the audit log and the operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
// Rare, short-lived values (one per change); most variants carry a patient.
#[allow(clippy::large_enum_variant)]
pub enum AuditEvent {
    Associated {
        bed: String,
        patient: Patient,
        at: Timestamp,
        cause: Cause,
    },
    /// The patient left the bed (transfer or swap out).
    Unassociated {
        bed: String,
        previous: Option<Patient>,
        at: Timestamp,
        cause: Cause,
    },
    Ended {
        bed: String,
        patient: Patient,
        at: Timestamp,
        cause: Cause,
    },
    /// The bed had another patient the feed never moved out; the new event replaced them.
    Displaced {
        bed: String,
        previous: Patient,
        at: Timestamp,
        cause: Cause,
    },
    /// A cancel retracted `cancelled`: from `since` the bed is back in its earlier state.
    /// Readings published in between went out with the retracted state.
    Retracted {
        bed: String,
        since: Timestamp,
        cancelled: Cause,
        cause: Cause,
    },
    /// A cancel for something this gateway never applied, for a patient it has in `bed`:
    /// the bed is unassociated rather than guessed.
    CancelWithoutHistory {
        bed: String,
        at: Timestamp,
        cause: Cause,
    },
    Updated {
        bed: String,
        patient: Patient,
        cause: Cause,
    },
    Merged {
        bed: String,
        surviving: Cx,
        merged: Vec<Cx>,
        cause: Cause,
    },
    /// A merge made one patient of two associated with different beds: both are unassociated.
    MergeCollision {
        beds: Vec<String>,
        cause: Cause,
    },
    ManualConflict {
        bed: String,
        manual: Patient,
        adt: Patient,
    },
    PatientMismatch {
        bed: String,
        adt: Patient,
        device_reported: String,
        at: Timestamp,
    },
    MismatchResolved {
        bed: String,
        at: Timestamp,
    },
    /// First sight of a location that is not one of this gateway's beds.
    UnmappedLocation {
        location: String,
    },
    /// The event's time was before the bed's last change; it took effect at that change instead.
    OutOfOrder {
        bed: String,
        requested: Timestamp,
        applied: Timestamp,
        cause: Cause,
    },
    /// A message already applied (the sender repeated it): nothing changed.
    Duplicate {
        cause: Cause,
    },
}

/// Why a message could not be applied. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error("PID-3 has no identifier with an assigning authority")]
    NoQualifiedId,
    #[error("cancel of {cancelled} refused: bed {bed} changed after it")]
    CancelConflict { cancelled: String, bed: String },
    #[error("swap would put both patients in bed {bed}")]
    SwapConflict { bed: String },
}

impl ApplyError {
    /// The ACK error to send (AE: the feed must see that the message did not take effect).
    pub fn ack_error(&self) -> AckError {
        let (code, location) = match self {
            ApplyError::NoQualifiedId => (ErrorCode::RequiredFieldMissing, Some(("PID", 3))),
            _ => (ErrorCode::ApplicationInternalError, None),
        };
        AckError { code, text: alloc::format!("{self}"), location }
    }
}

/// A device's patient id that disagrees with the ADT patient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Mismatch {
    device_reported: String,
    since: Timestamp,
}

/// The association state of all beds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Associations {
    beds: BTreeMap<String, Vec<Entry>>,
    history: Vec<Applied>,
    #[serde(default)]
    mismatches: BTreeMap<String, Mismatch>,
    #[serde(default)]
    unmapped: BTreeMap<String, u64>,
    #[serde(default)]
    unmapped_other: u64,
    #[serde(skip)]
    bedmap: BedMap,
    #[serde(skip)]
    manual: BTreeMap<String, Patient>,
}

/// A change planned by a rule, applied with the others in one step.
enum Change {
    Set(String, BedState),
}

impl Associations {
    pub fn new(bedmap: BedMap) -> Associations {
        Associations { bedmap, ..Associations::default() }
    }

    /// Re-attaches the configuration to state restored from disk (the bed map and manual
    /// bindings come from the configuration, never from the persisted state).
    pub fn with_config(mut self, bedmap: BedMap) -> Associations {
        self.bedmap = bedmap;
        self
    }

    /// Sets a manual binding; returns the conflict when the bed also has an ADT patient now.
    pub fn set_manual(&mut self, bed: &str, patient: Patient) -> Option<AuditEvent> {
        let conflict = self.current(bed).patient().map(|adt| AuditEvent::ManualConflict {
            bed: bed.into(),
            manual: patient.clone(),
            adt: adt.clone(),
        });
        self.manual.insert(bed.into(), patient);
        conflict
    }

    fn live(entries: &[Entry]) -> impl DoubleEndedIterator<Item = (usize, &Entry)> {
        entries.iter().enumerate().filter(|(_, e)| e.retracted_by.is_none())
    }

    /// The bed's state now (after every applied event).
    pub fn current(&self, bed: &str) -> &BedState {
        self.beds.get(bed).and_then(|e| Self::live(e).next_back()).map(|(_, e)| &e.state).unwrap_or(&BedState::Unassociated)
    }

    /// The bed's ADT state at `t`.
    pub fn state_at(&self, bed: &str, t: Timestamp) -> &BedState {
        self.beds
            .get(bed)
            .and_then(|e| Self::live(e).rev().find(|(_, e)| e.from <= t))
            .map(|(_, e)| &e.state)
            .unwrap_or(&BedState::Unassociated)
    }

    /// What a reading taken at `t` on `bed` is attributed to.
    pub fn patient_at(&self, bed: &str, t: Timestamp) -> Attribution {
        let adt = match self.state_at(bed, t) {
            BedState::Associated { patient, cause, .. } => Some((patient, cause)),
            _ => None,
        };
        match (self.manual.get(bed), adt) {
            (Some(m), Some((a, _))) => Attribution::Conflict { manual: m.clone(), adt: a.clone() },
            (Some(m), None) => Attribution::Patient { patient: m.clone(), source: Source::Manual },
            (None, Some((a, cause))) => match self.mismatches.get(bed) {
                Some(mm) if t >= mm.since => Attribution::Mismatch { adt: a.clone(), device_reported: mm.device_reported.clone() },
                _ => Attribution::Patient { patient: a.clone(), source: Source::Adt { cause: cause.clone() } },
            },
            (None, None) => Attribution::Unassociated,
        }
    }

    /// The interval `[from, until)` around `t` over which [`Associations::patient_at`] gives
    /// the same answer for `bed` (as long as the state is not changed): a caller can keep the
    /// answer for readings in that interval instead of asking per reading.
    pub fn span_at(&self, bed: &str, t: Timestamp) -> (Timestamp, Timestamp) {
        let (mut from, mut until) = (Timestamp(i64::MIN), Timestamp(i64::MAX));
        if let Some(entries) = self.beds.get(bed) {
            for (_, e) in Self::live(entries) {
                if e.from <= t {
                    from = e.from;
                } else {
                    until = e.from;
                    break;
                }
            }
        }
        if let Some(m) = self.mismatches.get(bed) {
            if m.since <= t {
                from = from.max(m.since);
            } else {
                until = until.min(m.since);
            }
        }
        (from, until)
    }

    /// Checks the patient id a device reports against the bed's patient at `t`. A mismatch
    /// holds until the device reports an id that agrees.
    pub fn device_reported(&mut self, bed: &str, device_id: &str, t: Timestamp) -> Option<AuditEvent> {
        let adt = self.state_at(bed, t).patient().cloned()?;
        if adt.answers_to(device_id) {
            self.mismatches.remove(bed).map(|_| AuditEvent::MismatchResolved { bed: bed.into(), at: t })
        } else if self.mismatches.get(bed).is_some_and(|m| m.device_reported == device_id) {
            None
        } else {
            let since = self.mismatches.get(bed).map(|m| m.since).unwrap_or(t);
            self.mismatches.insert(bed.into(), Mismatch { device_reported: device_id.into(), since });
            Some(AuditEvent::PatientMismatch { bed: bed.into(), adt, device_reported: device_id.into(), at: t })
        }
    }

    /// Unmapped locations seen, with how often.
    pub fn unmapped(&self) -> (&BTreeMap<String, u64>, u64) {
        (&self.unmapped, self.unmapped_other)
    }

    /// The configured bed map.
    pub fn bedmap(&self) -> &BedMap {
        &self.bedmap
    }

    /// The gateway beds that have any state.
    pub fn beds(&self) -> impl Iterator<Item = &str> {
        self.beds.keys().map(String::as_str)
    }

    /// The bed a patient is associated with now, if any.
    pub fn bed_of(&self, patient: &Patient) -> Option<&str> {
        self.beds.keys().find(|b| self.current(b).patient().is_some_and(|p| p.is(patient))).map(String::as_str)
    }

    fn map(&mut self, pl: Option<&Pl>, audit: &mut Vec<AuditEvent>) -> Option<String> {
        let pl = pl?;
        if let Some(b) = self.bedmap.lookup(pl) {
            return Some(b.into());
        }
        let key = alloc::format!("{pl}");
        if let Some(n) = self.unmapped.get_mut(&key) {
            *n += 1;
        } else if self.unmapped.len() < MAX_UNMAPPED {
            self.unmapped.insert(key.clone(), 1);
            audit.push(AuditEvent::UnmappedLocation { location: key });
        } else {
            self.unmapped_other += 1;
        }
        None
    }

    /// Applies an ADT message that took effect at `at` (its effective time, resolved by the
    /// caller from EVN-6/EVN-2/MSH-7 and the feed's zone, or the receive time). On error nothing
    /// changed.
    pub fn apply(&mut self, msg: &AdtMessage, at: Timestamp) -> Result<Vec<AuditEvent>, ApplyError> {
        let cause = Cause { event: msg.event, control_id: msg.header.control_id.clone() };
        let mut audit = Vec::new();
        if self.history.iter().any(|h| h.cause == cause) {
            audit.push(AuditEvent::Duplicate { cause });
            return Ok(audit);
        }
        let first = &msg.patients[0];
        let location = |p: &AdtPatient| p.visit.as_ref().and_then(|v| v.location.clone());
        let mut changes = Vec::new();
        let mut patients = Vec::new();
        match msg.event {
            AdtEvent::A01 | AdtEvent::A04 | AdtEvent::A02 => {
                let new_bed = self.map(location(first).as_ref(), &mut audit);
                let Some(patient) = Patient::from_adt(first) else {
                    return if new_bed.is_some() { Err(ApplyError::NoQualifiedId) } else { Ok(audit) };
                };
                let old_bed = self.bed_of(&patient).map(String::from);
                if old_bed.is_some() && old_bed == new_bed {
                    // Already there (a repeated admit, a transfer within the bed): refresh only.
                    return Ok(self.update(&patient, cause, at, audit));
                }
                if let Some(old) = old_bed {
                    changes.push(Change::Set(old, BedState::Unassociated));
                }
                if let Some(new) = new_bed {
                    changes.push(Change::Set(new, BedState::Associated { patient: patient.clone(), since: at, cause: cause.clone() }));
                }
                patients.push(patient);
            }
            AdtEvent::A03 => {
                let Some(patient) = Patient::from_adt(first) else {
                    return if self.map(location(first).as_ref(), &mut audit).is_some() {
                        Err(ApplyError::NoQualifiedId)
                    } else {
                        Ok(audit)
                    };
                };
                if let Some(bed) = self.bed_of(&patient).map(String::from) {
                    let p = self.current(&bed).patient().cloned().unwrap_or(patient.clone());
                    changes.push(Change::Set(bed, BedState::Ended { patient: p, at, cause: cause.clone() }));
                }
                patients.push(patient);
            }
            AdtEvent::A08 => {
                let Some(patient) = Patient::from_adt(first) else { return Ok(audit) };
                return Ok(self.update(&patient, cause, at, audit));
            }
            AdtEvent::A11 | AdtEvent::A12 | AdtEvent::A13 => {
                let Some(patient) = Patient::from_adt(first) else {
                    return if self.map(location(first).as_ref(), &mut audit).is_some() {
                        Err(ApplyError::NoQualifiedId)
                    } else {
                        Ok(audit)
                    };
                };
                return self.cancel(msg.event, patient, cause, at, audit);
            }
            AdtEvent::A17 => {
                let (Some(a), Some(b)) = (Patient::from_adt(&msg.patients[0]), Patient::from_adt(&msg.patients[1])) else {
                    let mapped = msg.patients.iter().filter_map(&location).filter(|pl| self.bedmap.lookup(pl).is_some()).count();
                    return if mapped > 0 { Err(ApplyError::NoQualifiedId) } else { Ok(audit) };
                };
                let bed_a = self.bed_of(&a).map(String::from);
                let bed_b = self.bed_of(&b).map(String::from);
                // Each goes to the other's bed; a patient not here goes to its PV1-3 if that is
                // one of ours and not the bed it leaves.
                let target = |me: &Option<String>, other: &Option<String>, p: &AdtPatient, s: &mut Self, audit: &mut Vec<AuditEvent>| {
                    other.clone().or_else(|| s.map(location(p).as_ref(), audit).filter(|t| Some(t) != me.as_ref()))
                };
                let to_a = target(&bed_a, &bed_b, &msg.patients[0], self, &mut audit);
                let to_b = target(&bed_b, &bed_a, &msg.patients[1], self, &mut audit);
                if to_a.is_some() && to_a == to_b {
                    return Err(ApplyError::SwapConflict { bed: to_a.unwrap_or_default() });
                }
                let mut planned: BTreeMap<String, BedState> = BTreeMap::new();
                for old in [&bed_a, &bed_b].into_iter().flatten() {
                    planned.insert(old.clone(), BedState::Unassociated);
                }
                for (to, p) in [(to_a, &a), (to_b, &b)] {
                    if let Some(to) = to {
                        planned.insert(to, BedState::Associated { patient: p.clone(), since: at, cause: cause.clone() });
                    }
                }
                changes.extend(planned.into_iter().map(|(b, s)| Change::Set(b, s)));
                patients.push(a);
                patients.push(b);
            }
            AdtEvent::A40 => return Ok(self.merge(msg, cause, at, audit)),
        }
        self.commit(changes, cause, at, patients, &mut audit);
        Ok(audit)
    }

    /// Pushes the planned entries, with their audit events, as one applied message.
    fn commit(&mut self, changes: Vec<Change>, cause: Cause, at: Timestamp, patients: Vec<Patient>, audit: &mut Vec<AuditEvent>) {
        // Entries stay in time order per bed: an event older than a bed's last change takes
        // effect at that change (and says so).
        let mut at_eff = at;
        for Change::Set(bed, _) in &changes {
            if let Some((_, last)) = self.beds.get(bed).and_then(|e| Self::live(e).next_back()) {
                if last.from > at_eff {
                    at_eff = last.from;
                }
            }
        }
        let mut entries = Vec::new();
        for Change::Set(bed, state) in changes {
            if at_eff != at {
                audit.push(AuditEvent::OutOfOrder { bed: bed.clone(), requested: at, applied: at_eff, cause: cause.clone() });
            }
            let state = match state {
                BedState::Associated { patient, cause, .. } => BedState::Associated { patient, since: at_eff, cause },
                BedState::Ended { patient, cause, .. } => BedState::Ended { patient, at: at_eff, cause },
                s => s,
            };
            let previous = self.current(&bed).patient().cloned();
            match &state {
                BedState::Associated { patient, .. } => {
                    if let Some(prev) = previous.filter(|p| !p.is(patient)) {
                        audit.push(AuditEvent::Displaced { bed: bed.clone(), previous: prev, at: at_eff, cause: cause.clone() });
                    }
                    audit.push(AuditEvent::Associated { bed: bed.clone(), patient: patient.clone(), at: at_eff, cause: cause.clone() });
                    if let Some(m) = self.manual.get(&bed) {
                        audit.push(AuditEvent::ManualConflict { bed: bed.clone(), manual: m.clone(), adt: patient.clone() });
                    }
                }
                BedState::Ended { patient, .. } => {
                    audit.push(AuditEvent::Ended { bed: bed.clone(), patient: patient.clone(), at: at_eff, cause: cause.clone() })
                }
                BedState::Unassociated => {
                    audit.push(AuditEvent::Unassociated { bed: bed.clone(), previous, at: at_eff, cause: cause.clone() })
                }
            }
            let timeline = self.beds.entry(bed.clone()).or_default();
            timeline.push(Entry { from: at_eff, state, retracted_by: None });
            entries.push((bed, timeline.len() - 1));
        }
        self.history.push(Applied { cause, at: at_eff, patients, entries, retracted: false, noop: false });
    }

    /// A08: refreshes name, other ids and visit where the patient is associated; never moves.
    /// Recorded as applied (for duplicate detection) but as a no-op: see [`Applied::noop`].
    fn update(&mut self, patient: &Patient, cause: Cause, at: Timestamp, mut audit: Vec<AuditEvent>) -> Vec<AuditEvent> {
        self.history.push(Applied {
            cause: cause.clone(),
            at,
            patients: alloc::vec![patient.clone()],
            entries: Vec::new(),
            retracted: false,
            noop: true,
        });
        if let Some(bed) = self.bed_of(patient).map(String::from) {
            if let Some((_, entry)) =
                self.beds.get_mut(&bed).and_then(|e| e.iter_mut().enumerate().rev().find(|(_, e)| e.retracted_by.is_none()))
            {
                if let BedState::Associated { patient: p, .. } = &mut entry.state {
                    p.name = patient.name.clone().or(p.name.take());
                    p.visit = patient.visit.clone().or(p.visit.take());
                    for id in patient.ids() {
                        if !p.has_id(id) {
                            p.other_ids.push(id.clone());
                        }
                    }
                    audit.push(AuditEvent::Updated { bed, patient: p.clone(), cause });
                }
            }
        }
        audit
    }

    fn cancel(
        &mut self,
        event: AdtEvent,
        patient: Patient,
        cause: Cause,
        at: Timestamp,
        mut audit: Vec<AuditEvent>,
    ) -> Result<Vec<AuditEvent>, ApplyError> {
        let cancels: &[AdtEvent] = match event {
            AdtEvent::A11 => &[AdtEvent::A01, AdtEvent::A04],
            AdtEvent::A12 => &[AdtEvent::A02],
            _ => &[AdtEvent::A03],
        };
        let target = self
            .history
            .iter()
            .rposition(|h| !h.retracted && !h.noop && cancels.contains(&h.cause.event) && h.patients.iter().any(|p| p.is(&patient)));
        let Some(i) = target else {
            // Nothing of ours to retract. If we hold the patient, we cannot tell what the
            // cancel restores: unassociate rather than guess.
            if let Some(bed) = self.bed_of(&patient).map(String::from) {
                audit.push(AuditEvent::CancelWithoutHistory { bed: bed.clone(), at, cause: cause.clone() });
                self.commit(alloc::vec![Change::Set(bed, BedState::Unassociated)], cause, at, alloc::vec![patient], &mut audit);
            }
            return Ok(audit);
        };
        // Only the latest change of each bed can be retracted without undoing later events.
        for (bed, idx) in &self.history[i].entries {
            let last = self.beds.get(bed).and_then(|e| Self::live(e).next_back()).map(|(j, _)| j);
            if last != Some(*idx) {
                return Err(ApplyError::CancelConflict { cancelled: self.history[i].cause.control_id.clone(), bed: bed.clone() });
            }
        }
        // Retracting must not bring back a patient who has since been associated elsewhere.
        let beds: Vec<&String> = self.history[i].entries.iter().map(|(b, _)| b).collect();
        for (bed, idx) in &self.history[i].entries {
            let restored = self.beds.get(bed).and_then(|e| Self::live(&e[..*idx]).next_back()).and_then(|(_, e)| e.state.patient());
            if let Some(p) = restored {
                let elsewhere = self.beds.keys().any(|b| !beds.contains(&b) && self.current(b).patient().is_some_and(|q| q.is(p)));
                if elsewhere {
                    return Err(ApplyError::CancelConflict { cancelled: self.history[i].cause.control_id.clone(), bed: bed.clone() });
                }
            }
        }
        let cancelled = self.history[i].cause.clone();
        let since = self.history[i].at;
        for (bed, idx) in self.history[i].entries.clone() {
            if let Some(e) = self.beds.get_mut(&bed).and_then(|t| t.get_mut(idx)) {
                e.retracted_by = Some(cause.control_id.clone());
            }
            audit.push(AuditEvent::Retracted { bed, since, cancelled: cancelled.clone(), cause: cause.clone() });
        }
        self.history[i].retracted = true;
        self.history.push(Applied { cause, at, patients: alloc::vec![patient], entries: Vec::new(), retracted: false, noop: false });
        Ok(audit)
    }

    /// A40: every record of a merged identifier becomes the surviving patient, in the whole
    /// timeline, so late readings carry the surviving identity.
    fn merge(&mut self, msg: &AdtMessage, cause: Cause, at: Timestamp, mut audit: Vec<AuditEvent>) -> Vec<AuditEvent> {
        let mut touched_patients = Vec::new();
        let mut changes = Vec::new();
        for p in &msg.patients {
            let Some(surviving) = Patient::from_adt(p) else { continue };
            let merged: Vec<Cx> = p.merged_ids.clone();
            let is_merged = |q: &Patient| merged.iter().any(|m| q.has_id(m)) && !q.is(&surviving);
            // Two records of one person in different beds at the same time: one of them is
            // wrong and nothing says which. Rewrite nothing; unassociate both now.
            if self.overlap(&surviving, &is_merged) {
                let beds: Vec<String> = self
                    .beds
                    .keys()
                    .filter(|b| self.current(b).patient().is_some_and(|q| q.is(&surviving) || is_merged(q)))
                    .cloned()
                    .collect();
                audit.push(AuditEvent::MergeCollision { beds: beds.clone(), cause: cause.clone() });
                changes.extend(beds.into_iter().map(|b| Change::Set(b, BedState::Unassociated)));
                touched_patients.push(surviving);
                continue;
            }
            let mut beds = BTreeSet::new();
            for (bed, entries) in self.beds.iter_mut() {
                for e in entries.iter_mut() {
                    if let BedState::Associated { patient, .. } | BedState::Ended { patient, .. } = &mut e.state {
                        if is_merged(patient) {
                            *patient = Patient {
                                name: surviving.name.clone().or(patient.name.take()),
                                visit: patient.visit.take(),
                                ..surviving.clone()
                            };
                            beds.insert(bed.clone());
                        }
                    }
                }
            }
            for h in self.history.iter_mut() {
                for q in h.patients.iter_mut() {
                    if is_merged(q) {
                        *q = surviving.clone();
                    }
                }
            }
            for bed in beds {
                audit.push(AuditEvent::Merged { bed, surviving: surviving.id.clone(), merged: merged.clone(), cause: cause.clone() });
            }
            touched_patients.push(surviving);
        }
        // One person now in two beds: report, and attribute to neither.
        for p in &touched_patients {
            let beds: Vec<String> = self.beds.keys().filter(|b| self.current(b).patient().is_some_and(|q| q.is(p))).cloned().collect();
            if beds.len() > 1 {
                audit.push(AuditEvent::MergeCollision { beds: beds.clone(), cause: cause.clone() });
                changes.extend(beds.into_iter().map(|b| Change::Set(b, BedState::Unassociated)));
            }
        }
        self.commit(changes, cause, at, touched_patients, &mut audit);
        audit
    }

    /// The live intervals `[from, until)` during which each bed held a patient matching `is`.
    fn intervals(&self, is: &dyn Fn(&Patient) -> bool) -> Vec<(&str, Timestamp, Timestamp)> {
        let mut out = Vec::new();
        for (bed, entries) in &self.beds {
            let live: Vec<&Entry> = Self::live(entries).map(|(_, e)| e).collect();
            for (k, e) in live.iter().enumerate() {
                if e.state.patient().is_some_and(is) {
                    let until = live.get(k + 1).map(|n| n.from).unwrap_or(Timestamp(i64::MAX));
                    out.push((bed.as_str(), e.from, until));
                }
            }
        }
        out
    }

    /// Whether `a` and a record matching `is_b` were ever in different beds at the same time.
    fn overlap(&self, a: &Patient, is_b: &dyn Fn(&Patient) -> bool) -> bool {
        let xs = self.intervals(&|p: &Patient| p.is(a));
        let ys = self.intervals(is_b);
        xs.iter().any(|(bx, fx, ux)| ys.iter().any(|(by, fy, uy)| bx != by && fx < uy && fy < ux))
    }

    /// Forgets what no reading can need any more: timeline entries superseded before `before`
    /// (the one in force at `before` is kept) and applied messages older than that. Cancels of
    /// pruned events then fall back to the no-history rule.
    pub fn prune(&mut self, before: Timestamp) {
        let mut removed: BTreeMap<String, usize> = BTreeMap::new();
        for (bed, entries) in self.beds.iter_mut() {
            let keep_from = entries.iter().rposition(|e| e.from <= before && e.retracted_by.is_none()).unwrap_or(0);
            if keep_from > 0 {
                entries.drain(..keep_from);
                removed.insert(bed.clone(), keep_from);
            }
        }
        self.history.retain(|h| h.at >= before);
        for h in self.history.iter_mut() {
            h.entries.retain_mut(|(bed, idx)| match removed.get(bed) {
                Some(&n) if *idx < n => false,
                Some(&n) => {
                    *idx -= n;
                    true
                }
                None => true,
            });
        }
    }
}
