//! The sensor node end to end: the real firmware image boots in QEMU (Arm MPS2-AN386,
//! Cortex-M4F), its UART is a pseudo-terminal, `medgw run` reads it with the `medgw-link`
//! protocol through the real serial path and publishes to Mosquitto. Then the gateway is killed
//! for a while and started again: the node keeps measuring and stores its batches until the
//! gateway acknowledges them, so nothing it measured is lost.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use medgw_e2e::*;
use serde_json::Value;

fn have_target() -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else { return false };
    Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("lib/rustlib/thumbv7em-none-eabihf").exists()
}

/// The board image, built into `target/qemu-image` (shared with the firmware crate's own QEMU
/// test) unless `MEDGW_NODE_ELF` names one.
fn image() -> PathBuf {
    if let Some(p) = std::env::var_os("MEDGW_NODE_ELF") {
        return PathBuf::from(p);
    }
    let root = workspace();
    let target_dir = root.join("target/qemu-image");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args([
            "build",
            "-q",
            "--release",
            "--target",
            "thumbv7em-none-eabihf",
            "-p",
            "medgw-firmware",
            "--bin",
            "medgw-node",
            "--target-dir",
        ])
        .arg(&target_dir)
        .status()
        .expect("cargo");
    assert!(status.success(), "building the firmware image failed");
    target_dir.join("thumbv7em-none-eabihf/release/medgw-node")
}

/// QEMU with the node's UART on a pseudo-terminal; returns the process and the pty path.
fn start_qemu(elf: &Path, dir: &Path) -> (Proc, PathBuf) {
    let stderr = dir.join("qemu.log");
    let mut child = Command::new("qemu-system-arm")
        .args([
            "-machine",
            "mps2-an386",
            "-display",
            "none",
            "-monitor",
            "none",
            "-chardev",
            "pty,id=link",
            "-serial",
            "chardev:link",
            "-kernel",
        ])
        .arg(elf)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start qemu-system-arm");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let start = Instant::now();
    let pty = loop {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 || start.elapsed() > Duration::from_secs(20) {
            panic!("QEMU did not say where the UART is: {:?} {}", line, std::fs::read_to_string(&stderr).unwrap_or_default());
        }
        // "char device redirected to /dev/pts/3 (label link)"
        if let Some(rest) = line.split("redirected to ").nth(1) {
            break PathBuf::from(rest.split_whitespace().next().unwrap());
        }
    };
    // Keep reading QEMU's stdout so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while out.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
    (Proc { child, name: "qemu".into(), stderr }, pty)
}

fn node_obs(msgs: &[Received]) -> Vec<Value> {
    msgs.iter().filter(|m| m.topic.ends_with("/node/obs")).map(Received::json).collect()
}

#[test]
fn the_firmware_in_qemu_is_read_by_the_gateway_and_a_gateway_outage_loses_nothing() {
    if missing("mosquitto") || missing("qemu-system-arm") {
        return;
    }
    if !have_target() {
        eprintln!("SKIPPED: the thumbv7em-none-eabihf target is not installed (`.ci/run` adds it)");
        return;
    }
    let elf = image();
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let (mut qemu, pty) = start_qemu(&elf, dir.path());
    let cfg = format!(
        "[gateway]\nid = \"gw-node\"\nsite = \"HOSP\"\nunit = \"ICU\"\ntimezone = \"UTC\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nformat = \"canonical\"\n\n[status]\nenabled = false\n\n[buffer]\npath = \"{}\"\n\n[[device]]\nname = \"node\"\nprotocol = \"medgw-link\"\nport = \"{}\"\nbed = \"BED7\"\n",
        broker.port,
        dir.path().join("buffer.db").display(),
        pty.display()
    );
    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    // The node needs ~12 s for its first numbers (filter settling, agreeing estimates).
    let msgs = sub.wait_for(Duration::from_secs(60), |m| {
        node_obs(m).iter().filter(|o| o["metric"] == "MDC_PULS_OXIM_SAT_O2" && o["value"].is_number()).count() >= 5
    });
    let obs = node_obs(&msgs);
    let spo2: Vec<&Value> = obs.iter().filter(|o| o["metric"] == "MDC_PULS_OXIM_SAT_O2" && o["value"].is_number()).collect();
    assert!(spo2.len() >= 5, "SpO2 from the node: {} observations of {}; gateway log:\n{}", spo2.len(), obs.len(), gw.log());
    // The node's identity (Hello): EUI-64 and manufacturer, and the synthetic patient's values.
    let device = &spo2[0]["device"];
    assert!(device["eui64"].as_str().is_some_and(|e| e.len() == 16), "{device}");
    assert_eq!(device["manufacturer"], "medgw");
    assert!(device["key"].as_str().unwrap().starts_with("eui64:"));
    for o in &spo2 {
        let v = o["value"].as_f64().unwrap();
        assert!((95.0..=99.0).contains(&v), "SpO2 {v} (synthetic 97 ± 2)");
    }
    let pr: Vec<f64> = obs.iter().filter(|o| o["metric"] == "MDC_PULS_OXIM_PULS_RATE").filter_map(|o| o["value"].as_f64()).collect();
    assert!(!pr.is_empty() && pr.iter().all(|v| (69.0..=75.0).contains(v)), "pulse rate {pr:?} (synthetic 72 ± 3)");
    let temp: Vec<f64> = obs.iter().filter(|o| o["metric"] == "MDC_TEMP_BODY").filter_map(|o| o["value"].as_f64()).collect();
    assert!(!temp.is_empty() && temp.iter().all(|v| (36.7..=36.9).contains(v)), "temperature {temp:?} (synthetic 36.8)");

    // The gateway dies; the node keeps measuring and keeps its unacknowledged batches.
    gw.kill9();
    std::thread::sleep(Duration::from_secs(10));
    let mut gw = start_gateway(dir.path(), "gw", &cfg);
    std::thread::sleep(Duration::from_secs(12));
    let msgs = sub.snapshot();
    gw.terminate(Duration::from_secs(15));
    qemu.kill9();

    // Every batch the node made after the first one seen is there: the batch sequence numbers
    // of the SpO2 observations (one per batch) are contiguous across the outage.
    let mut seqs: Vec<u64> =
        node_obs(&msgs).iter().filter(|o| o["metric"] == "MDC_PULS_OXIM_SAT_O2").filter_map(|o| o["seq"].as_u64()).collect();
    seqs.sort();
    seqs.dedup();
    let (first, last) = (seqs[0], *seqs.last().unwrap());
    assert!(last - first >= 30, "batches {first}..{last}: the run covers the outage");
    let missing: Vec<u64> = (first..=last).filter(|s| seqs.binary_search(s).is_err()).collect();
    assert!(missing.is_empty(), "batches lost across the gateway outage: {missing:?}");
    let gaps: Vec<Value> =
        msgs.iter().filter(|m| m.topic.ends_with("/node/events")).map(Received::json).filter(|e| e["kind"] == "sequence-gap").collect();
    assert!(gaps.is_empty(), "no sequence gap reported: {gaps:?}");
}
