//! The field-capture tools: `medgw record` from a (pseudo-)serial port, `medgw decode` of the
//! capture, `medgw simulate --replay` of it, and decode's exit codes and rejection reports.

use std::process::{Command, Stdio};
use std::time::Duration;

use medgw_e2e::*;
use serde_json::Value;

fn decode(args: &[&str], input: &std::path::Path) -> (Option<i32>, Vec<Value>, String) {
    let out = Command::new(medgw_bin()).arg("decode").args(args).arg(input).output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (out.status.code(), lines, String::from_utf8_lossy(&out.stderr).to_string())
}

fn values(obs: &[Value]) -> Vec<(u64, String)> {
    obs.iter().map(|o| (o["code"].as_u64().unwrap_or(0), o["value"].to_string())).collect()
}

#[test]
fn record_decode_and_replay_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = start_sim(dir.path(), "masimo", "masimo", &["--period-ms", "1000"]);
    let cap = dir.path().join("cap.txt");
    let rec = Command::new(medgw_bin())
        .args(["record", "--baud", "9600", "--duration", "5s", "--port"])
        .arg(&sim.link)
        .arg("--out")
        .arg(&cap)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(rec.status.success(), "{}", String::from_utf8_lossy(&rec.stderr));
    sim.proc.terminate(Duration::from_secs(5));
    let text = std::fs::read_to_string(&cap).unwrap();
    assert!(text.starts_with("# medgw-capture v1"), "{text}");

    let (code, obs, err) = decode(&["--protocol", "masimo", "--timezone", "UTC"], &cap);
    assert_eq!(code, Some(0), "{err}");
    assert!(obs.len() >= 8, "a few lines' worth of observations: {}", obs.len());
    // The capture decodes to what the simulator sent, and twice to the same ids.
    let sent: Vec<(u64, String)> = sim
        .sent()
        .iter()
        .map(|s| (s["metric"].as_u64().unwrap(), s["value"].as_str().map(String::from).unwrap_or_else(|| "null".into())))
        .collect();
    assert!(
        sent.starts_with(&values(&obs)) || sent.windows(obs.len()).any(|w| w == values(&obs).as_slice()),
        "decoded values are a run of the sent values"
    );
    let (_, again, _) = decode(&["--protocol", "masimo", "--timezone", "UTC"], &cap);
    assert_eq!(
        obs.iter().map(|o| o["id"].clone()).collect::<Vec<_>>(),
        again.iter().map(|o| o["id"].clone()).collect::<Vec<_>>(),
        "deterministic ids"
    );

    // Replay the capture onto a new pty and record it again: the same bytes decode the same.
    let link = dir.path().join("replay-tty");
    let mut replay = Command::new(medgw_bin())
        .args(["simulate", "--pty", "--replay"])
        .arg(&cap)
        .arg("--link")
        .arg(&link)
        .args(["--speed", "4"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(replay.stdout.take().unwrap()), &mut first).unwrap();
    assert_eq!(first.trim(), link.display().to_string());
    let cap2 = dir.path().join("cap2.txt");
    let rec = Command::new(medgw_bin())
        .args(["record", "--baud", "9600", "--duration", "3s", "--port"])
        .arg(&link)
        .arg("--out")
        .arg(&cap2)
        .output()
        .unwrap();
    assert!(rec.status.success());
    let _ = replay.wait();
    let (_, replayed, _) = decode(&["--protocol", "masimo", "--timezone", "UTC"], &cap2);
    assert_eq!(values(&replayed), values(&obs), "the replay carries the capture's bytes");
}

/// OBX-4 of every OBX row of `medgw decode --format hl7v2` output.
fn sub_ids(text: &str) -> Vec<String> {
    text.lines().filter(|l| l.starts_with("OBX|")).map(|l| l.split('|').nth(4).unwrap().to_string()).collect()
}

/// `decode --format hl7v2` prints one PCD-01 message per observation set (issue 13): what a
/// Nonin frame reports (SpO2 and pulse rate) is one message with the containment tree, not one
/// message per number; a second frame at the same instant is a set of its own.
#[test]
fn decode_hl7v2_prints_one_message_per_observation_set() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("df8.hex");
    std::fs::write(&input, "80 48 61 00 81 16 5F 20 80 48 61 00").unwrap();
    let out =
        Command::new(medgw_bin()).args(["decode", "--protocol", "nonin-df8", "--hex", "--format", "hl7v2"]).arg(&input).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let messages: Vec<&str> = text.split("\n\n").filter(|m| !m.trim().is_empty()).collect();
    assert_eq!(messages.len(), 3, "three frames, three sets of two: {text}");
    for m in &messages {
        assert_eq!(sub_ids(m), ["1.0.0.0", "1.1.0.0", "1.1.1.0", "1.1.1.1", "1.1.1.2"], "{m}");
        assert!(m.contains("|69641^MDC_DEV_ANALY_SAT_O2_MDS^MDC|1.0.0.0|") && m.contains("|150456^") && m.contains("|149530^"), "{m}");
    }
    // Deterministic MSH-10, different per set.
    let ids: std::collections::BTreeSet<&str> = messages.iter().map(|m| m.split('|').nth(9).unwrap()).collect();
    assert_eq!(ids.len(), 3, "{text}");
}

#[test]
fn decode_reports_rejections_with_offsets_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    // NP-1, garbage bytes without bit 7, then NP-2, NP-1, NP-2 (Nonin DF8). DF8 has no
    // checksum: the garbage drops the lock, so the NP-1 before it is never confirmed and is
    // rejected; the three frames after it confirm the lock again and are printed.
    let input = dir.path().join("df8.hex");
    std::fs::write(&input, "80 48 61 00  11 22 33  81 16 5F 20  80 48 61 00  81 16 5F 20").unwrap();
    let (code, obs, err) = decode(&["--protocol", "nonin-df8", "--hex"], &input);
    assert_eq!(code, Some(1), "a rejected frame gives exit 1: {err}");
    assert_eq!(
        values(&obs),
        vec![
            (150456, "95".into()),
            (149530, "150".into()),
            (150456, "97".into()),
            (149530, "72".into()),
            (150456, "95".into()),
            (149530, "150".into())
        ],
        "good frames are still printed"
    );
    assert!(err.contains("rejected at byte 4"), "the offset of the bad bytes: {err}");
    assert!(err.contains("rejected at byte 0: 1 frame(s) not confirmed"), "the unconfirmed frame: {err}");
    // A clean input: exit 0. An unknown protocol: exit 2.
    std::fs::write(&input, "80 48 61 00 80 48 61 00 80 48 61 00").unwrap();
    assert_eq!(decode(&["--protocol", "nonin-df8", "--hex"], &input).0, Some(0));
    assert_eq!(decode(&["--protocol", "nonin-9999", "--hex"], &input).0, Some(2));
    // GATT: one characteristic value per line (GP-5, blood pressure) and HL7 output.
    std::fs::write(&input, "04 78 00 50 00 5D 00 48 00\n").unwrap();
    let out =
        Command::new(medgw_bin()).args(["decode", "--protocol", "gatt-blood-pressure", "--format", "hl7v2"]).arg(&input).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("150021^MDC_PRESS_BLD_NONINV_SYS^MDC") && text.contains("|120|266016^MDC_DIM_MMHG^MDC|"), "{text}");
    // One measurement (the panel and its pulse rate) is one PCD-01 message: the BP VMD with the
    // pulse rate's channel and the panel's.
    assert_eq!(text.matches("MSH|").count(), 1, "{text}");
    assert_eq!(sub_ids(&text), ["1.0.0.0", "1.1.0.0", "1.1.1.0", "1.1.1.1", "1.1.2.0", "1.1.2.1", "1.1.2.2", "1.1.2.3"], "{text}");
    let list = Command::new(medgw_bin()).args(["decode", "--list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for name in [
        "nonin-df2",
        "nonin-df7",
        "nonin-df8",
        "masimo",
        "intellivue",
        "medibus",
        "gatt-heart-rate",
        "gatt-plx-spot",
        "gatt-plx-continuous",
        "gatt-blood-pressure",
        "gatt-temperature",
        "gatt-weight",
        "gatt-glucose",
        "medgw-link",
    ] {
        assert!(list.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} in --list");
    }
}
