//! End to end on emulated hardware: the board image boots in QEMU (`mps2-an386`, Cortex-M4F),
//! its UART is this test's pipe, and the gateway's `medgw-link` decoder talks to it live:
//! Hello, time, batches, acknowledgements.
//!
//! Also checks the image against the product budget (flash < 64 KiB, static RAM < 16 KiB) and
//! prints the sizes.
//!
//! The image is built with `cargo build --release --target thumbv7em-none-eabihf` into
//! `target/qemu-image` (a separate target directory, so the running `cargo test` does not block
//! it), or taken from `MEDGW_NODE_ELF`. Skipped, saying so, when `qemu-system-arm` or the
//! `thumbv7em-none-eabihf` target is missing; a failing build fails the test.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use medgw_firmware::identity::eui64_from_unique_id;
use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::mdc::code;
use medgw_protocols::quality::Flags;
use medgw_protocols::time::{DeviceTime, Timestamp};
use medgw_protocols::wire::link::LinkDecoder;

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Whether the rust toolchain has the thumbv7em-none-eabihf standard library.
fn have_target() -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot).join("lib/rustlib/thumbv7em-none-eabihf").exists()
}

/// The image: `MEDGW_NODE_ELF`, or built here. A build failure fails the test.
fn image() -> PathBuf {
    if let Some(p) = std::env::var_os("MEDGW_NODE_ELF") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target_dir = root.join("target").join("qemu-image");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--target", "thumbv7em-none-eabihf", "-p", "medgw-firmware", "--bin", "medgw-node", "--target-dir"])
        .arg(&target_dir)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the thumbv7em-none-eabihf image failed");
    target_dir.join("thumbv7em-none-eabihf").join("release").join("medgw-node")
}

/// (flash, static RAM) of an ELF32 image: flash is every allocated section with contents
/// (vector table, code, read-only data, the initial values of .data); RAM every writable
/// allocated section (.data, .bss, .uninit).
fn sizes(elf: &[u8]) -> (u64, u64) {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([elf[o], elf[o + 1], elf[o + 2], elf[o + 3]]) as u64;
    assert_eq!(&elf[..5], b"\x7fELF\x01", "an ELF32 image");
    let (shoff, shentsize, shnum) = (u32_at(0x20) as usize, u16_at(0x2E), u16_at(0x30));
    let (mut flash, mut ram) = (0, 0);
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let (kind, flags, size) = (u32_at(h + 4), u32_at(h + 8), u32_at(h + 20));
        const WRITE: u64 = 1;
        const ALLOC: u64 = 2;
        const NOBITS: u64 = 8;
        if flags & ALLOC == 0 {
            continue;
        }
        if kind != NOBITS {
            flash += size;
        }
        if flags & WRITE != 0 {
            ram += size;
        }
    }
    (flash, ram)
}

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[test]
fn the_image_boots_in_qemu_and_the_gateway_decoder_reads_it() {
    if !have("qemu-system-arm", "--version") {
        println!("SKIPPED: qemu-system-arm is not installed (apt-get install qemu-system-arm)");
        return;
    }
    if std::env::var_os("MEDGW_NODE_ELF").is_none() && !have_target() {
        println!("SKIPPED: the thumbv7em-none-eabihf target is not installed (rustup target add thumbv7em-none-eabihf)");
        return;
    }
    let elf = image();
    let bytes = std::fs::read(&elf).expect("read the image");
    let (flash, ram) = sizes(&bytes);
    println!(
        "medgw-node (thumbv7em-none-eabihf, release): flash {flash} bytes ({:.1} KiB), static RAM {ram} bytes ({:.1} KiB)",
        flash as f64 / 1024.0,
        ram as f64 / 1024.0
    );
    assert!(flash < 64 * 1024, "flash {flash} over the 64 KiB budget");
    assert!(ram < 16 * 1024, "static RAM {ram} over the 16 KiB budget");

    let mut qemu = Command::new("qemu-system-arm")
        .args([
            "-machine",
            "mps2-an386",
            "-display",
            "none",
            "-monitor",
            "none",
            "-chardev",
            "stdio,id=link,mux=off,signal=off",
            "-serial",
            "chardev:link",
            "-kernel",
        ])
        .arg(&elf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start qemu");
    let mut to_node = qemu.stdin.take().expect("stdin");
    let mut from_node = qemu.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok(n) = from_node.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });

    let mut dec = LinkDecoder::new(&DecoderOptions::default());
    let mut events = Vec::new();
    dec.start(Timestamp(wall_ms()), &mut events);
    let mut received = 0usize;
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut numbers = 0;
    while Instant::now() < deadline && numbers < 6 {
        for e in events.iter().skip(received) {
            if let Event::Transmit(b) = e {
                let _ = to_node.write_all(b);
                let _ = to_node.flush();
            }
        }
        received = events.len();
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
            dec.feed(&chunk, Timestamp(wall_ms()), &mut events);
        }
        numbers = events
            .iter()
            .filter(|e| matches!(e, Event::Measurement(m) if m.metric == code::MDC_PULS_OXIM_SAT_O2 && m.value.numeric().is_some()))
            .count();
    }
    let _ = qemu.kill();
    let _ = qemu.wait();
    drop(to_node);
    let _ = reader.join();

    let rejected: Vec<_> = events.iter().filter(|e| matches!(e, Event::Rejected { .. })).collect();
    assert!(rejected.is_empty(), "{rejected:?}");
    let id = events.iter().find_map(|e| if let Event::Identity(i) = e { Some(i.clone()) } else { None }).expect("a Hello");
    assert_eq!(id.eui64.map(|e| e.0), Some(eui64_from_unique_id(b"medgw-mps2-an386")));
    assert_eq!(id.model.as_deref(), Some("medgw-node"));
    assert!(numbers >= 6, "only {numbers} SpO2 values in 45 s: {events:?}");
    let ms: Vec<_> = events.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m.clone()) } else { None }).collect();
    let now = wall_ms();
    for m in &ms {
        if let Some(v) = m.value.numeric() {
            let v = v.to_f64();
            match m.metric {
                // The image's synthetic patient: 97 %, 72 /min, 36.80 degC.
                c if c == code::MDC_PULS_OXIM_SAT_O2 => assert!((v - 97.0).abs() <= 2.0, "{m:?}"),
                c if c == code::MDC_PULS_OXIM_PULS_RATE => assert!((v - 72.0).abs() <= 3.0, "{m:?}"),
                c if c == code::MDC_TEMP_BODY => assert!((v - 36.8).abs() <= 0.06, "{m:?}"),
                other => panic!("unexpected metric {other:?}"),
            }
        }
        // Time: the node synchronised with this test's clock, so its UTC times are recent.
        if let Some(DeviceTime::Utc(t)) = m.device_time {
            assert!(t.0 <= now + 1_000 && t.0 >= now - 60_000, "{m:?}");
        } else {
            assert!(m.flags.contains(Flags::CLOCK_NOT_SET), "{m:?}");
        }
    }
    assert!(ms.iter().any(|m| matches!(m.device_time, Some(DeviceTime::Utc(_)))), "the node never set its clock");
    let acks = events.iter().filter(|e| matches!(e, Event::Transmit(_))).count();
    println!("QEMU run: {} measurements, {numbers} SpO2 values, {acks} frames to the node", ms.len());
}
