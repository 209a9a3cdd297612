//! Harness for the end-to-end tests in `tests/tests/`: a real Mosquitto broker started on a
//! free loopback port, a subscriber that records what arrives, and the real `medgw` binary
//! (gateway and simulators) as child processes.
//!
//! Tests that need Mosquitto skip with a loud message when it is not installed; `.ci/run`
//! installs it, so in CI they always run.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod mllp_receiver;

/// The workspace root (this crate lives in `tests/`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The `medgw` binary under test: `MEDGW_BIN` when set (e.g. a release or packaged build),
/// otherwise the one cargo built for this test run. This package builds the gateway's own
/// `main.rs` as its binary `medgw-under-test` (see Cargo.toml), so `cargo test` compiles it
/// with the same features and profile as the tests, beside the test executables, instead of a
/// second `cargo build -p medgw` inside the run (which resolved features differently and
/// recompiled the dependencies).
pub fn medgw_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MEDGW_BIN") {
        return PathBuf::from(bin);
    }
    // A test executable is `target/<profile>/deps/<test>-<hash>`; binaries are one level up.
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().and_then(|deps| if deps.ends_with("deps") { deps.parent() } else { Some(deps) }).expect("target directory");
    let bin = dir.join(format!("medgw-under-test{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} is missing: run the tests through cargo (`cargo test -p medgw-e2e`), which builds it", bin.display());
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Finds an executable in PATH or the usual sbin directories (Debian puts mosquitto in /usr/sbin).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path.split(':').chain(["/usr/sbin", "/usr/local/sbin", "/sbin"]).map(|d| Path::new(d).join(name)).find(|p| p.is_file());
    found
}

/// Returns `true` (and prints why) when a test must be skipped because `tool` is missing.
pub fn missing(tool: &str) -> bool {
    if which(tool).is_none() {
        eprintln!("SKIPPED: `{tool}` is not installed (`.ci/run` installs it)");
        return true;
    }
    false
}

/// TLS material for a broker that requires client certificates.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A Mosquitto broker on a free loopback port.
pub struct Mosquitto {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    tls: bool,
}

impl Mosquitto {
    /// Starts a plain broker (anonymous, no persistence).
    pub fn start() -> Mosquitto {
        Self::start_with(None)
    }

    /// Starts a broker that requires TLS with a client certificate signed by `tls.ca`.
    pub fn start_tls(tls: &TlsFiles) -> Mosquitto {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<&TlsFiles>) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 100\nmax_queued_messages 100000\n"
        );
        if let Some(t) = tls {
            conf.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nuse_identity_as_username true\n",
                t.ca.display(),
                t.server_cert.display(),
                t.server_key.display()
            ));
        }
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write conf");
        let mut m = Mosquitto { port, child: None, dir, tls: tls.is_some() };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).expect("log");
        let child = Command::new(which("mosquitto").expect("mosquitto installed"))
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn wait_for_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port} after {timeout:?}");
}

/// A message the subscriber received.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// An MQTT subscriber recording every message, in order of arrival.
pub struct Subscriber {
    pub messages: Arc<Mutex<Vec<Received>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    /// Subscribes to `filter` on the broker at `port` (QoS 1, a persistent session so nothing
    /// is missed across broker restarts while it reconnects).
    pub fn start(port: u16, filter: &str) -> Subscriber {
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (m, s, f) = (messages.clone(), stop.clone(), filter.to_string());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let id = format!("medgw-test-sub-{}", std::process::id() as u64 * 1000 + (port as u64 % 1000));
            let mut opts = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
            opts.set_keep_alive(Duration::from_secs(5));
            opts.set_clean_session(false);
            opts.set_max_packet_size(1 << 20, 1 << 20);
            let (client, mut conn) = rumqttc::Client::new(opts, 100);
            let mut ready = Some(ready_tx);
            for event in conn.iter() {
                if s.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = client.subscribe(f.clone(), rumqttc::QoS::AtLeastOnce);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        if let Ok(mut g) = m.lock() {
                            g.push(Received { topic: p.topic.clone(), payload: p.payload.to_vec(), retain: p.retain });
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("subscriber connected");
        Subscriber { messages, stop, thread: Some(thread) }
    }

    pub fn snapshot(&self) -> Vec<Received> {
        self.messages.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Waits until `pred` holds for the messages or `timeout` passes; returns the messages.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let snap = self.snapshot();
            if pred(&snap) || start.elapsed() > timeout {
                return snap;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until no new message arrived for `quiet`.
    pub fn wait_quiet(&self, quiet: Duration, max: Duration) -> Vec<Received> {
        let start = Instant::now();
        let mut last = (0, Instant::now());
        loop {
            let n = self.snapshot().len();
            if n != last.0 {
                last = (n, Instant::now());
            }
            if last.1.elapsed() >= quiet || start.elapsed() > max {
                return self.snapshot();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // The connection thread ends at its next event (keep-alive at the latest).
        drop(self.thread.take());
    }
}

/// A child process whose output is kept in files for the failure message.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub stderr: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    pub fn kill9(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (up to `timeout`); returns the exit status code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `medgw run --config FILE` with `config` written to `dir`.
pub fn start_gateway(dir: &Path, name: &str, config: &str) -> Proc {
    start_gateway_env(dir, name, config, &[])
}

/// Like [`start_gateway`], with extra environment variables; the log is appended to, so a
/// gateway restarted under the same name keeps one log.
pub fn start_gateway_env(dir: &Path, name: &str, config: &str, env: &[(&str, &Path)]) -> Proc {
    spawn_gateway(dir, name, config, env, None)
}

/// Like [`start_gateway`], with the gateway allowed at most `open_files` open files (soft and
/// hard limit, so it cannot raise them), as on a host with a low limit.
pub fn start_gateway_limited(dir: &Path, name: &str, config: &str, open_files: u32) -> Proc {
    spawn_gateway(dir, name, config, &[], Some(open_files))
}

fn spawn_gateway(dir: &Path, name: &str, config: &str, env: &[(&str, &Path)], open_files: Option<u32>) -> Proc {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).expect("write config");
    let stderr = dir.join(format!("{name}.log"));
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&stderr).expect("log file");
    let mut cmd = match open_files {
        None => Command::new(medgw_bin()),
        Some(n) => {
            // The shell sets both limits and execs the gateway (same pid).
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(medgw_bin());
            c
        }
    };
    cmd.args(["run", "--config"]).arg(&path).env("MEDGW_LOG", "info").stdout(Stdio::null()).stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start medgw run");
    Proc { child, name: name.into(), stderr }
}

/// A simulator: `medgw simulate --device PROTOCOL --pty --link LINK --sent SENT [args]`.
pub struct Sim {
    pub proc: Proc,
    pub link: PathBuf,
    pub sent: PathBuf,
}

pub fn start_sim(dir: &Path, name: &str, protocol: &str, extra: &[&str]) -> Sim {
    let link = dir.join(format!("tty-{name}"));
    let sent = dir.join(format!("{name}.sent.jsonl"));
    let stderr = dir.join(format!("{name}.sim.log"));
    let mut child = Command::new(medgw_bin())
        .args(["simulate", "--device", protocol, "--pty", "--link"])
        .arg(&link)
        .arg("--sent")
        .arg(&sent)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("log file"))
        .spawn()
        .expect("start medgw simulate");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("simulator prints its path");
    assert_eq!(first.trim(), link.display().to_string(), "the first stdout line is the device path");
    Sim { proc: Proc { child, name: name.into(), stderr }, link, sent }
}

impl Sim {
    /// The values the simulator put on the wire, as JSON objects.
    pub fn sent(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.sent).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// Writes `text` to `path` (helper for configs and fixtures).
pub fn write(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
}

/// A CA, a broker certificate for 127.0.0.1/localhost and a client certificate (CN `gw-tls`),
/// made by the gateway's own throw-away PKI ([`medgw::pki`], also used by `medgw bench --tls`);
/// `None` when openssl is not installed.
pub fn make_tls(dir: &Path) -> Option<TlsFiles> {
    which("openssl")?;
    let f = medgw::pki::generate(dir, "gw-tls").expect("generating test certificates");
    Some(TlsFiles { ca: f.ca, server_cert: f.server_cert, server_key: f.server_key, client_cert: f.client_cert, client_key: f.client_key })
}

/// Compares two sequences and explains the first difference (lengths, the first index that
/// differs with its neighbourhood), so a failing end-to-end test says what went wrong.
pub fn assert_same_sequence<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
    let window = |v: &[T]| format!("{:?}", &v[first.saturating_sub(2)..(first + 4).min(v.len())]);
    panic!(
        "{what}: {} received, {} expected; first difference at index {first}:\n  received {}\n  expected {}",
        got.len(),
        want.len(),
        window(got),
        window(want)
    );
}
