//! The Bluetooth source end to end without a radio: a scripted peripheral → the real source
//! task, `DeviceRunner`, normaliser and SQLite buffer → the live hand-over, encoded to canonical
//! JSON and FHIR as the sink would publish them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use medgw_protocols::encode::{canonical, fhir};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::sim::gatt::GattSim;
use medgw_protocols::sim::{DeviceSimulator, SimOptions};
use medgw_protocols::wire::gatt::{uuid, GattKind};
use medgw_protocols::Timestamp;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::gatt_client::{service, Cursor};
use super::scripted::{Device, Item, Scripted, CONTROL, INDICATE, NOTIFY, READ_WRITE};
use super::transport::{BleError, CharId, GattValue};
use super::{cursor_file, BleParams};
use crate::buffer::Entry;
use crate::sink::mqtt::AuxMessage;
use crate::sink::topics::Topics;
use crate::source::{DeviceRunner, DeviceState, DeviceStatus, PipelineLink};

const ADDR: &str = "C0:FF:EE:00:00:01";

struct Gateway {
    live: mpsc::Receiver<Entry>,
    aux: mpsc::Receiver<AuxMessage>,
    status: Arc<DeviceStatus>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    nom: Arc<Nomenclature>,
    buffer: crate::buffer::BufferHandle,
    events: Vec<Value>,
}

/// Starts the source for one BLE device on `transport`, with a real buffer in `dir`.
async fn start(dir: &std::path::Path, services: &str, transport: Scripted) -> Gateway {
    let text = format!(
        r#"
[gateway]
id = "gw-ble"
site = "HOSP"
unit = "WARD"
timezone = "UTC"
[mqtt]
host = "127.0.0.1"
[buffer]
path = "{}"
[[device]]
name = "ble1"
ble = "{ADDR}"
services = [{services}]
bed = "BED1"
patient = "MRN1"
silence_timeout_s = 60
"#,
        dir.join("buffer.db").display()
    );
    let config = crate::config::parse(&text, dir).unwrap_or_else(|e| panic!("{e:?}"));
    let (buffer, _) = crate::buffer::open(&config.buffer).await.unwrap();
    let mut hand_over = crate::buffer::live::LiveHandOver::builder();
    let live = hand_over.sink(4096).rows;
    let (aux_tx, aux) = mpsc::channel(4096);
    let shutdown = CancellationToken::new();
    let link = PipelineLink {
        buffer: buffer.clone(),
        live: hand_over.build(),
        aux: aux_tx,
        topics: Topics::new("medgw/v1", "gw-ble"),
        waves: None,
        when_full: config.buffer.when_full,
        shutdown: shutdown.clone(),
        alarm_sinks: Default::default(),
    };
    let nom = Arc::new(Nomenclature::builtin());
    let d = &config.devices[0];
    let runner = DeviceRunner::new(&config, d, nom.clone(), link);
    let status = runner.status.clone();
    let crate::config::SourceConfig::Ble { address, name, services } = &d.source else { panic!("not BLE") };
    let cursor = cursor_file::path_for(&config.buffer.path, &d.name);
    let mut params = BleParams::new(address.as_deref(), name.as_deref(), services, config.device_zone(d), cursor);
    params.backoff = (Duration::from_millis(20), Duration::from_millis(100));
    params.connect_timeout = Duration::from_millis(200);
    let task = tokio::spawn(super::run(runner, transport, params));
    Gateway { live, aux, status, shutdown, task, nom, buffer, events: Vec::new() }
}

impl Gateway {
    /// Observations handed over live until `n` arrived (or 10 s passed).
    async fn take(&mut self, n: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.live.recv()).await {
                Ok(Some(e)) => out.push(e),
                _ => break,
            }
        }
        out
    }

    /// Device events published so far.
    fn drain_events(&mut self) -> &[Value] {
        while let Ok(m) = self.aux.try_recv() {
            if m.topic.ends_with("/events") {
                self.events.push(serde_json::from_slice(&m.payload).unwrap());
            }
        }
        &self.events
    }

    async fn wait_event(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.drain_events().iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "event not seen; events: {:#?}", self.events);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(mut self) -> (Vec<Value>, Arc<DeviceStatus>) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), &mut self.task).await.expect("the source stops").unwrap();
        self.drain_events();
        self.buffer.close().await;
        (self.events, self.status)
    }
}

fn canon(e: &Entry, nom: &Nomenclature) -> Value {
    serde_json::from_str(&canonical::to_string(&e.observation, nom)).unwrap()
}

fn gv(service: u16, u: u16, bytes: &[u8]) -> GattValue {
    GattValue { id: CharId::new(service, u), value: bytes.to_vec() }
}

/// Every health service, each fed its public vector (protocols.md §5, GP-1..GP-8), reaches
/// canonical JSON and FHIR with the right code, unit and value; the Device Information makes
/// the identity, and the clock is set through Current Time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_end_to_end_from_the_public_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::new(ADDR, Some("Multi"))
        .characteristic(service::HEART_RATE, uuid::HEART_RATE_MEASUREMENT, NOTIFY)
        .characteristic(service::PULSE_OXIMETER, uuid::PLX_SPOT_CHECK_MEASUREMENT, INDICATE)
        .characteristic(service::PULSE_OXIMETER, uuid::PLX_CONTINUOUS_MEASUREMENT, NOTIFY)
        .characteristic(service::BLOOD_PRESSURE, uuid::BLOOD_PRESSURE_MEASUREMENT, INDICATE)
        .characteristic(service::HEALTH_THERMOMETER, uuid::TEMPERATURE_MEASUREMENT, INDICATE)
        .characteristic(service::WEIGHT_SCALE, uuid::WEIGHT_MEASUREMENT, INDICATE)
        .characteristic(service::GLUCOSE, uuid::GLUCOSE_MEASUREMENT, INDICATE)
        .characteristic(service::CURRENT_TIME, uuid::CURRENT_TIME, READ_WRITE)
        .device_information("Acme Medical", "HM-7", "SN0042", Some([0xDE, 0xBC, 0x9A, 0xFE, 0xFF, 0x56, 0x34, 0x12]));
    let t = Scripted::new(device);
    let vectors: Vec<GattValue> = vec![
        gv(service::HEART_RATE, uuid::HEART_RATE_MEASUREMENT, &[0x06, 0x48]),
        gv(service::PULSE_OXIMETER, uuid::PLX_SPOT_CHECK_MEASUREMENT, &[0x00, 0x61, 0x00, 0x48, 0x00]),
        gv(service::PULSE_OXIMETER, uuid::PLX_CONTINUOUS_MEASUREMENT, &[0x00, 0x62, 0x00, 0x5F, 0x00]),
        gv(service::BLOOD_PRESSURE, uuid::BLOOD_PRESSURE_MEASUREMENT, &[0x04, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00, 0x48, 0x00]),
        gv(service::HEALTH_THERMOMETER, uuid::TEMPERATURE_MEASUREMENT, &[0x00, 0x6F, 0x01, 0x00, 0xFF]),
        gv(service::WEIGHT_SCALE, uuid::WEIGHT_MEASUREMENT, &[0x00, 0x14, 0x37]),
        gv(service::GLUCOSE, uuid::GLUCOSE_MEASUREMENT, &[0x02, 0x01, 0x00, 0xE8, 0x07, 0x03, 0x0F, 0x08, 0x1E, 0x00, 0x5F, 0xB0, 0x11]),
    ];
    for v in vectors {
        t.push(Item::Value(v));
    }
    let before = Timestamp::now();
    let mut gw = start(dir.path(), "", t.clone()).await;
    // HR 1, PLX spot 2, PLX continuous 2, BP 2 (panel + pulse), temperature 1, weight 1, glucose 1.
    let entries = gw.take(10).await;
    let got: Vec<(u64, String)> = entries
        .iter()
        .map(|e| {
            let j = canon(e, &gw.nom);
            (j["code"].as_u64().unwrap_or(0), j["value"].to_string())
        })
        .collect();
    let want: [(u64, &str); 10] = [
        (147842, "72"),   // MDC_ECG_HEART_RATE, GP-1
        (150456, "97"),   // SpO2, GP-3
        (149530, "72"),   // pulse rate (oximeter), GP-3
        (150456, "98"),   // GP-4
        (149530, "95"),   // GP-4
        (150020, "null"), // NIBP panel (compound: components), GP-5
        (149546, "72"),   // NIBP pulse rate, GP-5
        (150364, "36.7"), // body temperature, GP-6
        (188736, "70.5"), // weight, GP-7 (serde_json drops the trailing zeros of 70.500)
        (160184, "95"),   // capillary whole-blood glucose, GP-8 (95 mg/dL)
    ];
    for w in want {
        assert!(got.iter().any(|g| g.0 == w.0 && g.1 == w.1), "missing {w:?} in {got:?}");
    }
    assert_eq!(got.len(), 10, "{got:?}");
    let bp = entries.iter().map(|e| canon(e, &gw.nom)).find(|j| j["code"] == 150020).unwrap();
    let parts: Vec<String> = bp["components"].as_array().unwrap().iter().map(|c| c["value"].to_string()).collect();
    assert_eq!(parts, ["120", "80", "93"]);
    // FHIR: every observation is a vital-signs Observation for the bound patient, with the
    // device's identity from the Device Information Service.
    for e in &entries {
        let f: Value = serde_json::from_str(&fhir::observation(&e.observation, &gw.nom)).unwrap();
        assert_eq!(f["resourceType"], "Observation");
        assert_eq!(f["subject"]["reference"], "Patient/MRN1", "{f}");
        assert!(f.get("valueQuantity").is_some() || f.get("component").is_some(), "{f}");
        assert_eq!(e.observation.context.identity.serial.as_deref(), Some("SN0042"));
        assert_eq!(e.observation.context.key(), "eui64:123456FFFE9ABCDE");
    }
    let loincs: Vec<String> = entries.iter().map(|e| fhir::observation(&e.observation, &gw.nom)).collect();
    for code in ["8867-4", "59408-5", "85354-9", "8310-5", "29463-7"] {
        assert!(loincs.iter().any(|f| f.contains(code)), "LOINC {code} missing");
    }
    // The clock was set: Current Time, 10 bytes, the gateway's time in the device's zone (UTC).
    let writes = t.device().writes.clone();
    let ct = writes.iter().find(|(id, _)| id.uuid == uuid::CURRENT_TIME).expect("Current Time written");
    let parsed = medgw_protocols::wire::gatt::current_time::CurrentTime::parse(&ct.1).unwrap();
    let written = parsed.date_time.to_timestamp().unwrap();
    assert!((written.0 - before.0).abs() < 5_000, "device clock set to {written:?}, gateway {before:?}");
    let ev = gw.wait_event(|e| e["kind"] == "identity").await;
    assert!(ev["detail"].as_str().unwrap().contains("eui64:123456FFFE9ABCDE"), "{ev}");
    assert_eq!(gw.status.state(), DeviceState::Connected);
    let (events, _) = gw.stop().await;
    assert!(events.iter().any(|e| e["kind"] == "connected"), "{events:#?}");
}

fn glucose_meter(now: Timestamp) -> (Device, CharId) {
    let sim = GattSim::new(GattKind::Glucose, &SimOptions { seed: 3, period_ms: 60_000, record: true }, now);
    let d = Device::new(ADDR, Some("Meter"))
        .device_information("Acme", "GM-1", "G-77", None)
        .characteristic(service::CURRENT_TIME, uuid::CURRENT_TIME, READ_WRITE)
        .glucose_meter(sim, now);
    (d, CharId::new(service::GLUCOSE, uuid::RECORD_ACCESS_CONTROL_POINT))
}

fn glucose_seqs(entries: &[Entry]) -> Vec<u32> {
    entries.iter().filter_map(|e| e.observation.reading.seq).collect()
}

/// Records measured while nobody listened are fetched with the RACP; a disconnection in the
/// middle of the transfer resumes from the last committed record; a gateway restart asks only
/// for records it has not taken (the cursor file), and nothing repeats or goes missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glucose_records_survive_a_broken_transfer_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Timestamp(1_710_489_600_000); // 2024-03-15T08:00:00 on the meter's clock
    let (mut device, racp) = glucose_meter(t0);
    assert_eq!(device.measure_offline(10), 10);
    device.drop_after_records = Some(4);
    let t = Scripted::new(device);
    let mut gw = start(dir.path(), "\"glucose\"", t.clone()).await;
    let first = gw.take(10).await;
    assert_eq!(glucose_seqs(&first), (0..10).collect::<Vec<_>>(), "every stored record once, in order");
    for e in &first {
        let j = canon(e, &gw.nom);
        let flags: Vec<&str> = j["flags"].as_array().unwrap().iter().filter_map(|f| f.as_str()).collect();
        assert!(flags.contains(&"from-storage"), "{j}");
        // The meter's time stamps are kept: stored records are not a clock reading.
        assert_eq!(j["effective_time"], j["device_time"], "{j}");
    }
    gw.wait_event(|e| e["kind"] == "session" && e["detail"].as_str().is_some_and(|d| d.contains("6 stored glucose records"))).await;
    let racp_writes: Vec<Vec<u8>> = t.device().writes.iter().filter(|(id, _)| *id == racp).map(|(_, v)| v.clone()).collect();
    assert_eq!(racp_writes, [vec![0x01, 0x01], vec![0x01, 0x03, 0x01, 0x04, 0x00]], "all, then ≥ 4 after the break");
    let (events, status) = gw.stop().await;
    assert!(events.iter().any(|e| e["kind"] == "disconnected"), "{events:#?}");
    assert_eq!(status.observations.load(Ordering::Relaxed), 10);
    assert_eq!(cursor_file::load(&dir.path().join("ble/ble1.json")).glucose_seq, Some(9));

    // The values are the meter's.
    let sent = t.device().meter.as_mut().unwrap().take_sent();
    for e in &first {
        let s = sent.iter().find(|s| s.seq == e.observation.reading.seq).unwrap();
        assert_eq!(e.observation.reading.value.numeric().map(|d| d.to_string()), s.value.map(|d| d.to_string()));
    }

    // Three more while the gateway is down; a new gateway process (same buffer directory)
    // asks for ≥ 10 only.
    t.device().measure_offline(3);
    let mut gw = start(dir.path(), "\"glucose\"", t.clone()).await;
    let second = gw.take(3).await;
    assert_eq!(glucose_seqs(&second), [10, 11, 12]);
    let (_, status) = gw.stop().await;
    assert_eq!(status.observations.load(Ordering::Relaxed), 3, "nothing fetched twice");
    let last = t.device().writes.iter().rev().find(|(id, _)| *id == racp).map(|(_, v)| v.clone());
    assert_eq!(last, Some(vec![0x01, 0x03, 0x01, 0x0A, 0x00]));
    assert_eq!(cursor_file::load(&gw_cursor(dir.path())).glucose_seq, Some(12));
}

fn gw_cursor(dir: &std::path::Path) -> std::path::PathBuf {
    cursor_file::path_for(&dir.join("buffer.db"), "ble1")
}

/// A device sending malformed values: each is counted and reported as a rejection, the good
/// values around them arrive, and the session goes on (a malformed RACP answer and an
/// unreadable Device Information string included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_values_are_rejected_and_the_rest_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let hr = CharId::new(service::HEART_RATE, uuid::HEART_RATE_MEASUREMENT);
    let mut device = Device::new(ADDR, None)
        .characteristic(service::HEART_RATE, uuid::HEART_RATE_MEASUREMENT, NOTIFY)
        .characteristic(service::PULSE_OXIMETER, uuid::PLX_SPOT_CHECK_MEASUREMENT, INDICATE)
        .characteristic(service::PULSE_OXIMETER, uuid::RECORD_ACCESS_CONTROL_POINT, CONTROL)
        .device_information("Acme", "HR-1", "x", None);
    device.reads.insert(CharId::new(service::DEVICE_INFORMATION, uuid::SERIAL_NUMBER), vec![0xFF, 0xFE]);
    let t = Scripted::new(device);
    t.push_values(
        hr,
        [
            vec![0x06, 0x48],       // 72
            vec![0x01, 0x48],       // flags say uint16, one byte follows
            vec![],                 // empty value
            vec![0x10, 0x48, 0x00], // RR flag with half an interval
            vec![0xFF; 600],        // longer than any ATT value
            vec![0x06, 0x4A],       // 74
        ],
    );
    // An RACP answer that is not one, then nothing: the transfer times out harmlessly.
    t.push(Item::Value(gv(service::PULSE_OXIMETER, uuid::RECORD_ACCESS_CONTROL_POINT, &[0x06])));
    let mut gw = start(dir.path(), "\"heart-rate\", \"plx-spot\"", t.clone()).await;
    let entries = gw.take(2).await;
    let values: Vec<String> = entries.iter().map(|e| canon(e, &gw.nom)["value"].to_string()).collect();
    assert_eq!(values, ["72", "74"]);
    gw.wait_event(|e| e["kind"] == "session" && e["detail"].as_str().is_some_and(|d| d.contains("malformed"))).await;
    let (events, status) = gw.stop().await;
    assert_eq!(status.rejected.load(Ordering::Relaxed), 4);
    let rejected: u64 = events.iter().filter(|e| e["kind"] == "rejected").map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(rejected, 4, "{events:#?}");
    assert!(entries.iter().all(|e| e.observation.context.identity.serial.is_none()), "the unreadable serial is not used");
}

/// No adapter: the device is reported once (not once per retry) as `disconnected` with what is
/// missing, retried with back-off, and read as soon as the adapter is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_adapter_is_reported_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let hr = CharId::new(service::HEART_RATE, uuid::HEART_RATE_MEASUREMENT);
    let mut device = Device::new(ADDR, None).characteristic(service::HEART_RATE, uuid::HEART_RATE_MEASUREMENT, NOTIFY);
    device.refuse = [BleError::NoAdapter, BleError::NoAdapter, BleError::NoAdapter].into();
    let t = Scripted::new(device);
    t.push_values(hr, [vec![0x06, 0x48]]);
    let mut gw = start(dir.path(), "", t.clone()).await;
    let e = gw.wait_event(|e| e["kind"] == "disconnected").await;
    assert!(e["detail"].as_str().unwrap().contains("no Bluetooth adapter"), "{e}");
    assert_eq!(gw.take(1).await.len(), 1, "read once the adapter is there");
    gw.wait_event(|e| e["kind"] == "resumed").await;
    let (events, _) = gw.stop().await;
    assert_eq!(events.iter().filter(|e| e["kind"] == "disconnected").count(), 1, "{events:#?}");
    assert!(t.device().refuse.is_empty() && t.device().connects == 1);
}

/// A device that offers none of the configured services is refused with what it offers, and
/// the link is not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_without_the_configured_service_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::new(ADDR, None).characteristic(service::WEIGHT_SCALE, uuid::WEIGHT_MEASUREMENT, INDICATE);
    let t = Scripted::new(device);
    let mut gw = start(dir.path(), "\"glucose\"", t.clone()).await;
    let e = gw.wait_event(|e| e["kind"] == "disconnected").await;
    let d = e["detail"].as_str().unwrap();
    assert!(d.contains("none of the configured services (glucose)") && d.contains("0x181D"), "{d}");
    gw.stop().await;
}

/// A transfer cursor left by an older meter does not hide the records of a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_meter_is_read_from_its_first_record() {
    let dir = tempfile::tempdir().unwrap();
    cursor_file::store(&gw_cursor(dir.path()), &Cursor { device: Some("sn:Acme:GM-1:OLD".into()), glucose_seq: Some(500), plx_last: None })
        .unwrap();
    let (mut device, _) = glucose_meter(Timestamp(1_710_489_600_000));
    device.measure_offline(2);
    let mut gw = start(dir.path(), "\"glucose\"", Scripted::new(device)).await;
    assert_eq!(glucose_seqs(&gw.take(2).await), [0, 1]);
    gw.wait_event(|e| e["detail"].as_str().is_some_and(|d| d.contains("different device"))).await;
    gw.stop().await;
}

#[test]
fn current_time_is_the_device_zone_wall_clock() {
    // 2024-07-01T10:00:00Z is 12:00 in Berlin (summer time).
    let now = Timestamp(1_719_828_000_000);
    let zone = |name: &str| jiff::tz::TimeZone::get(name).unwrap();
    assert_eq!(super::local_time(&zone("Europe/Berlin"), now), Timestamp(now.0 + 2 * 3_600_000));
    assert_eq!(super::local_time(&zone("UTC"), now), now);
}

#[tokio::test]
async fn scan_lists_health_services() {
    use super::transport::BleTransport;
    let device = Device::new(ADDR, Some("Pulse 1"))
        .characteristic(service::PULSE_OXIMETER, uuid::PLX_CONTINUOUS_MEASUREMENT, NOTIFY)
        .characteristic(service::CURRENT_TIME, uuid::CURRENT_TIME, READ_WRITE);
    let found = Scripted::new(device).scan(Duration::from_millis(1)).await.unwrap();
    let mut out = Vec::new();
    super::print_scan(&found, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(ADDR) && text.contains("Pulse 1") && text.contains("pulse-oximeter (0x1822)") && text.contains("-60"), "{text}");
    assert!(!text.contains("0x1805"), "only health services are listed: {text}");
}
