//! One ADT message in, one ACK out: parse, apply to the association state, persist, answer.

use std::path::PathBuf;

use medgw_protocols::association::{Associations, AuditEvent};
use medgw_protocols::hl7::{ack, message, AckCode, AckError, AdtMessage, ErrorCode, Header, Message};
use medgw_protocols::time::DeviceTime;
use medgw_protocols::Timestamp;

use super::store;

/// What became of a message.
#[derive(Debug)]
pub struct Handled {
    /// The ACK to send back (not MLLP-framed).
    pub ack: String,
    pub code: AckCode,
    /// Why it was not accepted.
    pub error: Option<String>,
    pub audit: Vec<AuditEvent>,
}

pub struct Receiver {
    state: Associations,
    zone: jiff::tz::TimeZone,
    application: String,
    facility: String,
    /// `None`: in memory only (`medgw adt replay`).
    store: Option<PathBuf>,
    acks: u64,
    /// How far back readings may still be attributed; older history is pruned so the state
    /// (cloned, applied and written per message) stays small on a busy hospital feed.
    retention_ms: i64,
    /// MSH-11 accepted (table 0103): `P` production by default. A training (`T`) or debugging
    /// (`D`) feed must never associate patients on a production gateway.
    processing_id: String,
    /// Where the normaliser reads the state (`medgw run`); `None` for `medgw adt replay`.
    shared: Option<std::sync::Arc<super::Shared>>,
}

/// Readings older than this are not expected any more (the buffer's replay window is shorter).
pub const DEFAULT_RETENTION_MS: i64 = 72 * 3_600_000;

impl Receiver {
    pub fn new(state: Associations, zone: jiff::tz::TimeZone, application: &str, facility: &str, store: Option<PathBuf>) -> Receiver {
        Receiver {
            state,
            zone,
            application: application.into(),
            facility: facility.into(),
            store,
            acks: 0,
            retention_ms: DEFAULT_RETENTION_MS,
            processing_id: "P".into(),
            shared: None,
        }
    }

    /// Publishes every accepted change (and its audit events) to `shared`, starting now.
    pub fn with_shared(mut self, shared: std::sync::Arc<super::Shared>) -> Receiver {
        shared.publish(self.state.clone());
        self.shared = Some(shared);
        self
    }

    /// The configured manual binding of `bed` (`patient = {...}`): with an ADT patient on the
    /// same bed, neither is used (the conflict is an audit event, now or when ADT associates).
    pub fn set_manual(&mut self, bed: &str, patient: &medgw_protocols::observation::Patient) -> Option<AuditEvent> {
        let p = medgw_protocols::association::Patient {
            id: medgw_protocols::hl7::Cx {
                id: patient.id.clone(),
                assigning_authority: medgw_protocols::hl7::Hd {
                    namespace: patient.system.clone().unwrap_or_default(),
                    ..Default::default()
                },
                id_type: String::new(),
            },
            other_ids: Vec::new(),
            name: None,
            visit: None,
        };
        let conflict = self.state.set_manual(bed, p);
        self.changed(conflict.as_slice());
        conflict
    }

    /// A device on `bed` reported its own patient id at `t`. A new mismatch (or its end) is
    /// persisted, published and returned; an id already judged changes nothing.
    pub fn device_reported(&mut self, bed: &str, device_id: &str, t: Timestamp) -> Option<AuditEvent> {
        let event = self.state.device_reported(bed, device_id, t)?;
        if let Some(path) = &self.store {
            // Not persisted: the mismatch holds in memory until the next restart, when the
            // device reports again; never an association kept that should not be.
            if let Err(e) = store::save(path, &self.state) {
                tracing::error!(error = %e, "ADT state not saved after a device-reported patient id");
            }
        }
        self.changed(std::slice::from_ref(&event));
        Some(event)
    }

    /// After a change of `self.state`: the normaliser sees it, the pipeline gets the events.
    fn changed(&self, audit: &[AuditEvent]) {
        if let Some(s) = &self.shared {
            s.publish(self.state.clone());
            s.audit(audit);
        }
    }

    pub fn with_retention_ms(mut self, ms: i64) -> Receiver {
        self.retention_ms = ms;
        self
    }

    pub fn with_processing_id(mut self, id: &str) -> Receiver {
        self.processing_id = id.into();
        self
    }

    pub fn state(&self) -> &Associations {
        &self.state
    }

    /// Handles one deframed message received at `received`. The state is changed only when the
    /// change is persisted; AA is answered only then.
    pub fn handle(&mut self, bytes: &[u8], received: Timestamp) -> Handled {
        let header = message::decode_text(bytes).ok().and_then(|t| Message::parse(&t).ok().and_then(|m| Header::read(&m).ok()));
        let msg = match AdtMessage::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                let (code, err) = AckError::from_parse(&e);
                return self.answer(header.as_ref(), code, Some(err), Vec::new(), received);
            }
        };
        if msg.header.processing_id != self.processing_id {
            let err = AckError {
                code: ErrorCode::UnsupportedProcessingId,
                text: format!("processing id {:?}; this gateway accepts {:?}", msg.header.processing_id, self.processing_id),
                location: Some(("MSH", 11)),
            };
            return self.answer(Some(&msg.header), AckCode::AR, Some(err), Vec::new(), received);
        }
        let at = match msg.effective_time() {
            Some(DeviceTime::Utc(t)) => t,
            Some(DeviceTime::Local(t)) => crate::normalize::resolve_local(t, &self.zone).unwrap_or(received),
            None => received,
        };
        let mut next = self.state.clone();
        match next.apply(&msg, at) {
            Ok(audit) => {
                next.prune(Timestamp(received.as_millis().max(at.as_millis()).saturating_sub(self.retention_ms)));
                if let Some(path) = &self.store {
                    if let Err(e) = store::save(path, &next) {
                        tracing::error!(error = %e, "ADT state not saved; message refused");
                        let err =
                            AckError { code: ErrorCode::ApplicationInternalError, text: "state could not be saved".into(), location: None };
                        return self.answer(Some(&msg.header), AckCode::AE, Some(err), Vec::new(), received);
                    }
                }
                self.state = next;
                self.changed(&audit);
                self.answer(Some(&msg.header), AckCode::AA, None, audit, received)
            }
            Err(e) => self.answer(Some(&msg.header), AckCode::AE, Some(e.ack_error()), Vec::new(), received),
        }
    }

    fn answer(
        &mut self,
        header: Option<&Header>,
        code: AckCode,
        error: Option<AckError>,
        audit: Vec<AuditEvent>,
        now: Timestamp,
    ) -> Handled {
        self.acks += 1;
        let id = format!("MEDGW{}-{}", now.as_millis(), self.acks);
        let ack = ack::build(header, code, error.as_ref(), &id, &self.application, &self.facility, now);
        Handled { ack, code, error: error.map(|e| e.text), audit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::association::{BedMap, BedMapping};

    fn beds() -> BedMap {
        BedMap::new(vec![BedMapping {
            gateway_bed: "icu-3b".into(),
            facility: None,
            point_of_care: "ICU".into(),
            room: "03".into(),
            bed: "B".into(),
        }])
        .unwrap()
    }

    const A01_LOCAL: &[u8] = b"MSH|^~\\&|PAS|STMARY|MEDGW|ICU|20260701101500||ADT^A01|C1|P|2.5\rEVN|A01|20260701101500\rPID|||4711^^^STMARY^MR\rPV1||I|ICU^03^B\r";

    #[test]
    fn applies_persists_and_acknowledges() {
        let dir = tempfile_dir();
        let path = dir.join("buffer.db.adt.json");
        let zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let mut r = Receiver::new(Associations::new(beds()), zone, "MEDGW", "", Some(path.clone()));
        let h = r.handle(A01_LOCAL, Timestamp(0));
        assert_eq!(h.code, AckCode::AA, "{h:?}");
        assert!(h.ack.contains("\rMSA|AA|C1\r"));
        // 10:15 in Berlin in July is 08:15 UTC.
        let t = Timestamp::parse_rfc3339("2026-07-01T08:15:00Z").unwrap();
        assert!(r.state().patient_at("icu-3b", t).patient().is_some());
        assert!(r.state().patient_at("icu-3b", Timestamp(t.0 - 1)).patient().is_none());
        // A restart reads the same state back.
        let restored = store::load(&path, beds()).unwrap();
        assert!(restored.patient_at("icu-3b", t).patient().is_some());
        // Pruning keeps the association in force however old it is.
        let mut r2 = Receiver::new(restored, jiff::tz::TimeZone::UTC, "", "", None).with_retention_ms(1);
        let a03_elsewhere = b"MSH|^~\\&|PAS|STMARY|||20270101000000+0000||ADT^A03|C9|P|2.5\rPID|||1^^^STMARY^MR\rPV1||I|WARD^1^1\r";
        assert_eq!(r2.handle(a03_elsewhere, Timestamp(0)).code, AckCode::AA);
        assert!(r2.state().patient_at("icu-3b", Timestamp::parse_rfc3339("2027-01-01T00:00:00Z").unwrap()).patient().is_some());
        // Refusals say why.
        let h = r.handle(b"MSH|^~\\&|PAS|STMARY|||20260701101500||ADT^A01|C2|P|2.7\r", Timestamp(0));
        assert_eq!(h.code, AckCode::AR);
        assert!(h.ack.contains("MSA|AR|C2\rERR||MSH^1^12|203^"), "{}", h.ack);
        // A training message is refused, not applied.
        let h =
            r.handle(b"MSH|^~\\&|PAS|STMARY|||20260701101500||ADT^A03|C3|T|2.5\rPID|||4711^^^STMARY^MR\rPV1||I|ICU^03^B\r", Timestamp(0));
        assert_eq!(h.code, AckCode::AR);
        assert!(h.ack.contains("MSA|AR|C3\rERR||MSH^1^11|202^"), "{}", h.ack);
        assert!(r.state().patient_at("icu-3b", Timestamp(t.0 + 86_400_000)).patient().is_some());
        let h = r.handle(b"garbage", Timestamp(0));
        assert_eq!(h.code, AckCode::AE);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_state_that_cannot_be_saved_is_not_acknowledged_nor_kept() {
        let zone = jiff::tz::TimeZone::UTC;
        let mut r = Receiver::new(Associations::new(beds()), zone, "", "", Some(PathBuf::from("/nonexistent/dir/state.json")));
        let h = r.handle(A01_LOCAL, Timestamp(0));
        assert_eq!(h.code, AckCode::AE);
        assert!(h.ack.contains("207^Application internal error"), "{}", h.ack);
        assert!(r.state().patient_at("icu-3b", Timestamp(i64::MAX / 2)).patient().is_none());
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_an_empty_state() {
        let dir = tempfile_dir();
        let path = dir.join("s.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(store::load(&path, beds()), Err(store::StoreError::Corrupt(..))));
        assert!(store::load(&dir.join("absent.json"), beds()).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("medgw-adt-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
