//! A virtual serial link between the IntelliVue client and the simulated monitor, with a
//! virtual clock. Included by the other `intellivue*` test files (`#[path]`); on its own it
//! only checks itself.
#![allow(dead_code)]

use medgw_protocols::decode::{Decoder, DecoderOptions, Event};
use medgw_protocols::sim::intellivue::IntelliVueSim;
use medgw_protocols::sim::{DeviceSimulator, SimOptions};
use medgw_protocols::wire::intellivue::IntelliVueClient;
use medgw_protocols::Timestamp;

/// 2024-03-15T10:22:05Z, read by the simulated monitor as its local wall time.
pub const T0: Timestamp = Timestamp(1_710_498_125_000);

pub struct Link {
    pub client: IntelliVueClient,
    pub sim: IntelliVueSim,
    pub now: Timestamp,
    /// Every event the client produced, except `Transmit`.
    pub events: Vec<Event>,
    /// Every frame the client transmitted.
    pub sent_frames: Vec<Vec<u8>>,
    /// Every byte the monitor sent, in order (what a tap on the monitor's TX line sees).
    pub monitor_bytes: Vec<u8>,
    /// A tap on the monitor's TX line feeds this listen-only client too, when present.
    pub tap: Option<IntelliVueClient>,
    pub tap_events: Vec<Event>,
    /// Drop what the client sends (the serial line's client-to-monitor wire is cut).
    pub cut_uplink: bool,
}

impl Link {
    pub fn new(poll_period_ms: u32, seed: u64) -> Link {
        let client = IntelliVueClient::new(&DecoderOptions { poll_period_ms, listen_only: false, ..Default::default() });
        let sim = IntelliVueSim::new(&SimOptions { seed, period_ms: 1000, record: true }, T0);
        Link {
            client,
            sim,
            now: T0,
            events: Vec::new(),
            sent_frames: Vec::new(),
            monitor_bytes: Vec::new(),
            tap: None,
            tap_events: Vec::new(),
            cut_uplink: false,
        }
    }

    pub fn with_tap(mut self) -> Link {
        let mut tap = IntelliVueClient::new(&DecoderOptions { poll_period_ms: 1000, listen_only: true, ..Default::default() });
        let mut ev = Vec::new();
        tap.start(self.now, &mut ev);
        assert!(ev.is_empty(), "a listen-only client sends nothing on start: {ev:?}");
        self.tap = Some(tap);
        self
    }

    pub fn start(&mut self) {
        let mut ev = Vec::new();
        self.client.start(self.now, &mut ev);
        self.exchange(ev, Vec::new());
    }

    /// Delivers client events to the monitor and monitor bytes to the client until both are
    /// quiet.
    pub fn exchange(&mut self, mut client_events: Vec<Event>, mut monitor_out: Vec<u8>) {
        for _ in 0..1000 {
            let mut next_monitor = Vec::new();
            for e in client_events.drain(..) {
                match e {
                    Event::Transmit(bytes) => {
                        self.sent_frames.push(bytes.clone());
                        if !self.cut_uplink {
                            self.sim.receive(&bytes, self.now, &mut next_monitor);
                        }
                    }
                    other => self.events.push(other),
                }
            }
            monitor_out.extend(next_monitor);
            if monitor_out.is_empty() {
                return;
            }
            self.feed_client(&monitor_out, &mut client_events);
            monitor_out.clear();
        }
        panic!("link did not settle");
    }

    /// Bytes from the monitor to the client (and the tap).
    pub fn feed_client(&mut self, bytes: &[u8], client_events: &mut Vec<Event>) {
        self.monitor_bytes.extend_from_slice(bytes);
        self.client.feed(bytes, self.now, client_events);
        if let Some(tap) = self.tap.as_mut() {
            let mut ev = Vec::new();
            tap.feed(bytes, self.now, &mut ev);
            assert!(!ev.iter().any(|e| matches!(e, Event::Transmit(_))), "listen-only transmitted");
            self.tap_events.extend(ev);
        }
    }

    /// Injects monitor bytes directly (crafted frames).
    pub fn inject_to_client(&mut self, bytes: &[u8]) {
        let mut ev = Vec::new();
        self.feed_client(bytes, &mut ev);
        self.exchange(ev, Vec::new());
    }

    /// Runs both sides until `now + ms`, waking each when it asked to be woken.
    pub fn run_for(&mut self, ms: i64) {
        let until = Timestamp(self.now.0 + ms);
        for _ in 0..1_000_000 {
            let wake = self.client.next_wakeup().unwrap_or(Timestamp(i64::MAX)).min(self.sim.next_tick()).max(self.now);
            if wake > until {
                self.now = until;
                return;
            }
            self.now = wake;
            let mut ev = Vec::new();
            self.client.poll(self.now, &mut ev);
            let mut dev = Vec::new();
            self.sim.tick(self.now, &mut dev);
            // Make progress even when neither side moved its deadline at this instant.
            if ev.is_empty() && dev.is_empty() {
                let next = self.client.next_wakeup().unwrap_or(Timestamp(i64::MAX)).min(self.sim.next_tick());
                if next <= self.now {
                    self.now = Timestamp(self.now.0 + 1);
                }
            }
            self.exchange(ev, dev);
        }
        panic!("run_for did not finish");
    }

    pub fn sessions(&self) -> Vec<&'static str> {
        self.events.iter().filter_map(|e| if let Event::Session(s) = e { Some(*s) } else { None }).collect()
    }

    pub fn measurements(&self) -> Vec<&medgw_protocols::observation::Measurement> {
        self.events.iter().filter_map(|e| if let Event::Measurement(m) = e { Some(m) } else { None }).collect()
    }

    pub fn rejections(&self) -> Vec<(u64, medgw_protocols::Error)> {
        self.events
            .iter()
            .filter_map(|e| if let Event::Rejected { offset, error } = e { Some((*offset, error.clone())) } else { None })
            .collect()
    }
}

#[test]
fn harness_associates() {
    let mut l = Link::new(1000, 1);
    l.start();
    l.run_for(3000);
    assert!(l.client.is_associated());
    assert!(l.sim.is_associated());
}
