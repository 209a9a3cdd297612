//! Hostile input end to end (issue 19, item 3): random bytes on a `nonin-df8` pseudo-terminal
//! and a DF7 oximeter misconfigured as DF8, through `medgw run` to a real Mosquitto broker.
//! Neither may publish an observation; both must raise a `noisy-line` device event (limited,
//! not one per byte); a real DF8 oximeter on the same gateway still publishes everything.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use medgw_e2e::*;
use medgw_protocols::sim::Rng;
use serde_json::Value;

/// A pseudo-terminal the test writes to: the gateway opens the slave path.
struct NoisePty {
    master: File,
    _slave: std::os::fd::OwnedFd,
    path: PathBuf,
}

fn open_pty() -> NoisePty {
    let p = nix::pty::openpty(None, None).expect("openpty");
    let mut t = nix::sys::termios::tcgetattr(&p.slave).expect("tcgetattr");
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(&p.slave, nix::sys::termios::SetArg::TCSANOW, &t).expect("raw");
    let path = std::fs::read_link(format!("/proc/self/fd/{}", p.slave.as_raw_fd())).expect("pty path");
    NoisePty { master: File::from(p.master), _slave: p.slave, path }
}

fn config(dir: &Path, port: u16, devices: &[(&str, &Path)]) -> String {
    let mut c = format!(
        "[gateway]\nid = \"gw-noise\"\nsite = \"HOSP\"\nunit = \"ICU\"\ntimezone = \"UTC\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nformat = \"canonical\"\nkeep_alive_s = 5\n\n[status]\nenabled = false\n\n[buffer]\npath = \"{}\"\n",
        dir.join("buffer.db").display()
    );
    for (i, (name, link)) in devices.iter().enumerate() {
        c.push_str(&format!(
            "\n[[device]]\nname = \"{name}\"\nprotocol = \"nonin-df8\"\nport = \"{}\"\nbed = \"BED{}\"\n",
            link.display(),
            i + 1
        ));
    }
    c
}

fn of<'a>(msgs: &'a [Received], device: &str, what: &str) -> Vec<&'a Received> {
    msgs.iter().filter(|m| m.topic.ends_with(&format!("/{device}/{what}"))).collect()
}

#[test]
fn noise_and_a_wrong_protocol_on_a_df8_line_publish_nothing_and_raise_a_noisy_line_event() {
    if missing("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "medgw/v1/#");
    let mut pty = open_pty();
    // A DF7 oximeter (75 checksummed 5-byte frames a second) where DF8 is configured.
    let mut df7 = start_sim(dir.path(), "df7", "nonin-df7", &["--seed", "4", "--period-ms", "1000"]);
    // A real DF8 oximeter on the same gateway: it must still publish every value.
    let mut oxi = start_sim(dir.path(), "oxi", "nonin-df8", &["--seed", "2", "--period-ms", "250"]);
    let devices: Vec<(&str, &Path)> = vec![("noise", &pty.path), ("wrong", &df7.link), ("oxi", &oxi.link)];
    let mut gw = start_gateway(dir.path(), "gw", &config(dir.path(), broker.port, &devices));

    // Noise for 8 s: 4 KiB bursts every 50 ms (80 KB/s, as fast as a pty takes it), 640 KiB.
    let mut rng = Rng::new(19);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let burst: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
        pty.master.write_all(&burst).expect("write noise");
        std::thread::sleep(Duration::from_millis(50));
    }
    df7.proc.terminate(Duration::from_secs(5));
    oxi.proc.terminate(Duration::from_secs(5));
    let msgs = sub.wait_quiet(Duration::from_secs(3), Duration::from_secs(30));
    assert_eq!(gw.terminate(Duration::from_secs(15)), Some(0), "graceful stop: {}", gw.log());

    for device in ["noise", "wrong"] {
        let obs = of(&msgs, device, "obs");
        assert!(obs.is_empty(), "{device}: {} observations published, first {:?}", obs.len(), obs.first().map(|m| m.json()));
        let events: Vec<Value> = of(&msgs, device, "events").iter().map(|m| m.json()).collect();
        let noisy: Vec<&Value> = events.iter().filter(|e| e["kind"] == "noisy-line").collect();
        assert!(!noisy.is_empty(), "{device}: no noisy-line event in {events:?}");
        // Limited to one a minute per device, not one per frame or byte.
        assert_eq!(noisy.len(), 1, "{device}: {noisy:?}");
        assert!(noisy[0]["detail"].as_str().unwrap_or("").contains("wrong protocol or noisy line"), "{}", noisy[0]);
        assert_eq!(noisy[0]["device"], device);
    }
    let sent = oxi.sent();
    let got = of(&msgs, "oxi", "obs");
    assert!(!sent.is_empty(), "the DF8 simulator sent nothing");
    let ids: std::collections::HashSet<String> = got.iter().map(|m| m.json()["id"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(ids.len(), sent.len(), "every value of the real DF8 oximeter arrives once");
    assert!(of(&msgs, "oxi", "events").iter().all(|m| m.json()["kind"] != "noisy-line"));
}
