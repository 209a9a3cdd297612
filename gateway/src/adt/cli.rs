//! `medgw adt replay FILE` and `medgw adt status`.

use std::path::Path;

use medgw_protocols::association::Associations;
use medgw_protocols::encode::mllp;
use medgw_protocols::Timestamp;

use super::{store, AdtSettings, Receiver};

/// Splits a file of ADT messages: MLLP-framed (as captured from the wire), or plain text with
/// segments on lines (CR, LF or CR LF), a message starting at each `MSH`.
pub fn split_messages(data: &[u8]) -> Vec<Vec<u8>> {
    if data.contains(&mllp::START_BLOCK) {
        let mut d = mllp::Deframer::new(super::listener::MAX_MESSAGE);
        let mut out = Vec::new();
        d.feed(data, &mut out);
        return out
            .into_iter()
            .filter_map(|f| match f {
                mllp::Frame::Message(m) => Some(m),
                mllp::Frame::Rejected(_) => None,
            })
            .collect();
    }
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for line in data.split(|&b| b == b'\r' || b == b'\n').filter(|l| !l.is_empty()) {
        if line.starts_with(b"MSH") || messages.is_empty() {
            messages.push(Vec::new());
        }
        let m = messages.last_mut().expect("pushed above");
        m.extend_from_slice(line);
        m.push(b'\r');
    }
    messages
}

/// Applies every message of `file` to an association state in memory (or to `start`), printing
/// one JSON line per message (ACK code, error, audit events) and the final bed states.
pub fn replay(file: &Path, settings: &AdtSettings, out: &mut impl std::io::Write) -> anyhow::Result<Associations> {
    let data = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut r =
        Receiver::new(Associations::new(settings.beds.clone()), settings.zone.clone(), &settings.application, &settings.facility, None)
            .with_retention_ms(i64::MAX) // a replayed file may be old: keep its whole history
            .with_processing_id(&settings.processing_id);
    for (i, m) in split_messages(&data).iter().enumerate() {
        let h = r.handle(m, Timestamp::now());
        let control_id = h.ack.split('\r').find(|s| s.starts_with("MSA")).and_then(|s| s.split('|').nth(2)).unwrap_or("").to_string();
        let line =
            serde_json::json!({ "message": i + 1, "control_id": control_id, "ack": h.code.as_str(), "error": h.error, "audit": h.audit });
        writeln!(out, "{line}")?;
    }
    print_status(r.state(), out)?;
    Ok(r.state().clone())
}

/// Prints the current state of every bed and the unmapped locations.
pub fn print_status(state: &Associations, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let beds: serde_json::Map<String, serde_json::Value> =
        state.beds().map(|b| (b.to_string(), serde_json::to_value(state.current(b)).unwrap_or_default())).collect();
    let (unmapped, other) = state.unmapped();
    writeln!(out, "{}", serde_json::json!({ "beds": beds, "unmapped_locations": unmapped, "unmapped_other": other }))?;
    Ok(())
}

/// `medgw adt status`: the persisted state.
pub fn status(settings: &AdtSettings, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let path =
        settings.state.as_deref().ok_or_else(|| anyhow::anyhow!("no adt.state and no [buffer] path: nowhere to read the state from"))?;
    let state = store::load(path, settings.beds.clone())?;
    print_status(&state, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_and_framed_files() {
        let plain = b"MSH|^~\\&|A|B|||20260101||ADT^A01|1|P|2.5\nPID|||1^^^H\r\nPV1||I|X\n\nMSH|^~\\&|A|B|||20260101||ADT^A03|2|P|2.5\nPID|||1^^^H\n";
        let m = split_messages(plain);
        assert_eq!(m.len(), 2);
        assert!(m[0].ends_with(b"PV1||I|X\r"));
        let framed = [mllp::frame(&m[0]), mllp::frame(&m[1])].concat();
        assert_eq!(split_messages(&framed), m);
    }

    #[test]
    fn replay_prints_acks_and_the_final_state() {
        let settings = AdtSettings::parse(
            "[adt]\nzone = \"UTC\"\n[[adt.beds]]\ngateway_bed = \"icu-3b\"\npoint_of_care = \"ICU\"\nroom = \"03\"\nbed = \"B\"\n",
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("medgw-adt-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("feed.hl7");
        std::fs::write(
            &file,
            "MSH|^~\\&|PAS|H|||20260701101500||ADT^A01|C1|P|2.5\nPID|||4711^^^H^MR\nPV1||I|ICU^03^B\nMSH|^~\\&|PAS|H|||20260701111500||ADT^A02|C2|P|2.5\nPID|||4711^^^H^MR\nPV1||I|WARD^1^1|||ICU^03^B\nMSH|^~\\&|PAS|H|||20260701111500||ADT^A02|C3|P|2.9\n",
        )
        .unwrap();
        let mut out = Vec::new();
        let state = replay(&file, &settings, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0]["ack"], "AA");
        assert_eq!(lines[0]["audit"][0]["kind"], "associated");
        assert_eq!(lines[1]["audit"][0]["kind"], "unmapped-location");
        assert_eq!(lines[2]["ack"], "AR");
        assert_eq!(lines[3]["beds"]["icu-3b"]["state"], "unassociated");
        let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        assert!(state.patient_at("icu-3b", at("2026-07-01T10:30:00Z")).patient().is_some());
        assert!(state.patient_at("icu-3b", at("2026-07-01T11:30:00Z")).patient().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
