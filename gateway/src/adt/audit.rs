//! Audit events of the association as gateway events (MQTT `{prefix}/{gateway}/events`, the
//! log, the status page), without patient data: the bed, what changed, the ADT event and its
//! message control id, and times. Who the patient is stays in the association state (status
//! page for authenticated users, `medgw adt status`) and at debug level in the log.

use medgw_protocols::association::{AuditEvent, Cause};

use crate::events::{Event, EventKind};

fn cause(c: &Cause) -> String {
    format!("{:?} {}", c.event, c.control_id)
}

/// The audit event's kind as written in JSON (`associated`, `manual-conflict`, ...).
pub fn kind(a: &AuditEvent) -> &'static str {
    match a {
        AuditEvent::Associated { .. } => "associated",
        AuditEvent::Unassociated { .. } => "unassociated",
        AuditEvent::Ended { .. } => "ended",
        AuditEvent::Displaced { .. } => "displaced",
        AuditEvent::Retracted { .. } => "retracted",
        AuditEvent::CancelWithoutHistory { .. } => "cancel-without-history",
        AuditEvent::Updated { .. } => "updated",
        AuditEvent::Merged { .. } => "merged",
        AuditEvent::MergeCollision { .. } => "merge-collision",
        AuditEvent::ManualConflict { .. } => "manual-conflict",
        AuditEvent::PatientMismatch { .. } => "patient-mismatch",
        AuditEvent::MismatchResolved { .. } => "mismatch-resolved",
        AuditEvent::UnmappedLocation { .. } => "unmapped-location",
        AuditEvent::OutOfOrder { .. } => "out-of-order",
        AuditEvent::Duplicate { .. } => "duplicate",
    }
}

/// The gateway event for an audit event.
pub fn event(a: &AuditEvent) -> Event {
    let (ek, bed, detail) = match a {
        AuditEvent::Associated { bed, at, cause: c, .. } => {
            (EventKind::Association, Some(bed.clone()), format!("patient associated from {} ({})", at.rfc3339(), cause(c)))
        }
        AuditEvent::Unassociated { bed, at, cause: c, .. } => {
            (EventKind::Association, Some(bed.clone()), format!("patient left the bed at {} ({})", at.rfc3339(), cause(c)))
        }
        AuditEvent::Ended { bed, at, cause: c, .. } => {
            (EventKind::Association, Some(bed.clone()), format!("visit ended at {} ({})", at.rfc3339(), cause(c)))
        }
        AuditEvent::Displaced { bed, at, cause: c, .. } => (
            EventKind::Association,
            Some(bed.clone()),
            format!("another patient was in the bed and was replaced at {} ({})", at.rfc3339(), cause(c)),
        ),
        AuditEvent::Retracted { bed, since, cancelled, cause: c } => (
            EventKind::Association,
            Some(bed.clone()),
            format!(
                "{} retracted by {}: the bed is in its earlier state from {}; readings published in between carried the retracted state",
                cause(cancelled),
                cause(c),
                since.rfc3339()
            ),
        ),
        AuditEvent::CancelWithoutHistory { bed, at, cause: c } => (
            EventKind::AssociationConflict,
            Some(bed.clone()),
            format!("cancel for an event this gateway never applied: bed unassociated from {} ({})", at.rfc3339(), cause(c)),
        ),
        AuditEvent::Updated { bed, cause: c, .. } => {
            (EventKind::Association, Some(bed.clone()), format!("patient details updated ({})", cause(c)))
        }
        AuditEvent::Merged { bed, cause: c, .. } => {
            (EventKind::Association, Some(bed.clone()), format!("patient identifiers merged ({})", cause(c)))
        }
        AuditEvent::MergeCollision { beds, cause: c } => (
            EventKind::AssociationConflict,
            beds.first().cloned(),
            format!("merge would put one patient in beds {}: all unassociated ({})", beds.join(", "), cause(c)),
        ),
        AuditEvent::ManualConflict { bed, .. } => (
            EventKind::AssociationConflict,
            Some(bed.clone()),
            "the configured patient and the ADT feed's patient differ: readings carry no patient until one is removed".to_string(),
        ),
        AuditEvent::PatientMismatch { bed, at, .. } => (
            EventKind::PatientMismatch,
            Some(bed.clone()),
            format!("the device reports another patient than the ADT feed from {}: readings carry no patient", at.rfc3339()),
        ),
        AuditEvent::MismatchResolved { bed, at } => (
            EventKind::PatientMismatch,
            Some(bed.clone()),
            format!("the device's patient agrees with the ADT feed again from {}", at.rfc3339()),
        ),
        AuditEvent::UnmappedLocation { location } => (
            EventKind::UnmappedLocation,
            None,
            format!("ADT location {location} is not one of this gateway's beds: ignored here (counted)"),
        ),
        AuditEvent::OutOfOrder { bed, requested, applied, cause: c } => (
            EventKind::Association,
            Some(bed.clone()),
            format!("event time {} is before the bed's last change: applied at {} ({})", requested.rfc3339(), applied.rfc3339(), cause(c)),
        ),
        AuditEvent::Duplicate { cause: c } => (EventKind::Association, None, format!("repeated message, nothing changed ({})", cause(c))),
    };
    let mut e = Event::gateway(ek, detail);
    e.bed = bed;
    e.change = Some(kind(a));
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::association::Patient;
    use medgw_protocols::hl7::{AdtEvent, Cx, Hd, Xpn};
    use medgw_protocols::Timestamp;

    /// The event says what changed, where and why, never who.
    #[test]
    fn events_name_the_bed_and_the_message_never_the_patient() {
        let patient = Patient {
            id: Cx {
                id: "4711".into(),
                assigning_authority: Hd { namespace: "STMARY".into(), ..Default::default() },
                id_type: "MR".into(),
            },
            other_ids: vec![],
            name: Some(Xpn { family: "Doe".into(), given: "Jane".into(), ..Default::default() }),
            visit: Some(Cx { id: "V99".into(), ..Default::default() }),
        };
        let c = Cause { event: AdtEvent::A01, control_id: "C1".into() };
        for a in [
            AuditEvent::Associated { bed: "icu-3b".into(), patient: patient.clone(), at: Timestamp(0), cause: c.clone() },
            AuditEvent::ManualConflict { bed: "icu-3b".into(), manual: patient.clone(), adt: patient.clone() },
            AuditEvent::PatientMismatch { bed: "icu-3b".into(), adt: patient.clone(), device_reported: "123".into(), at: Timestamp(0) },
        ] {
            let e = event(&a);
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(e.bed.as_deref(), Some("icu-3b"));
            for phi in ["4711", "Doe", "Jane", "V99", "123"] {
                assert!(!json.contains(phi), "{phi} in {json}");
            }
            assert_eq!(serde_json::to_value(&e).unwrap()["change"], kind(&a));
        }
        assert_eq!(
            serde_json::to_value(event(&AuditEvent::Associated { bed: "b".into(), patient, at: Timestamp(0), cause: c })).unwrap()["kind"],
            "association"
        );
    }
}
