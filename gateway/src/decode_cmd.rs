//! `medgw decode`: a capture or raw bytes in, one observation per line out (`hl7v2`: one
//! PCD-01 message per observation set).
//!
//! For an engineer with a capture from the field: which values would the gateway publish, and
//! which frames does it reject and why (with the byte offset, so the bad frame can be found in
//! a hex dump). Request/response protocols are decoded passively (listen-only), since a
//! capture cannot answer requests.

use std::io::Write;
use std::sync::Arc;

use medgw_protocols::decode::{DecoderOptions, Event};
use medgw_protocols::encode::{canonical, fhir, hl7v2};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::{DeviceContext, Location, Observation};
use medgw_protocols::{registry, Timestamp};

use crate::capture::{self, Direction};
use crate::config::PayloadFormat;
use crate::normalize::Normalizer;

/// What a decode run found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub observations: u64,
    pub rejected: u64,
}

/// Errors that are the user's (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("unknown protocol {0:?}: `medgw decode --list` lists them")]
    UnknownProtocol(String),
    #[error("input: {0}")]
    Input(String),
}

/// Turns `--hex` text into bytes: whitespace, `0x` prefixes, commas and colons are ignored.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = text
        .split_whitespace()
        .map(|w| w.trim_start_matches("0x").trim_start_matches("0X"))
        .collect::<Vec<_>>()
        .join("")
        .replace([',', ':'], "");
    hex::decode(&cleaned).map_err(|e| format!("not hex: {e}"))
}

/// Decodes `input` as protocol `protocol`, writing observations to `out` and rejections to
/// `err`.
pub fn run(
    protocol: &str,
    input: &[u8],
    hex_text: bool,
    format: PayloadFormat,
    timezone: Option<&str>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<Summary, UsageError> {
    let info = registry::find(protocol).ok_or_else(|| UsageError::UnknownProtocol(protocol.to_string()))?;
    // Only a capture keeps the receipt times a rate gate judges; raw input arrives as one chunk,
    // so its gate is opened wide (the lock on the stream still applies).
    let timed = capture::is_capture(input);
    let max_frame_rate = if timed { None } else { Some(u32::MAX) };
    let mut decoder = (info.make)(&DecoderOptions { poll_period_ms: 1000, listen_only: true, max_frame_rate, ..DecoderOptions::default() });
    let nom = Arc::new(Nomenclature::builtin());
    let zone = match timezone {
        Some(z) => jiff::tz::TimeZone::get(z).map_err(|e| UsageError::Input(format!("time zone {z}: {e}")))?,
        None => jiff::tz::TimeZone::system(),
    };
    let context = DeviceContext {
        gateway: "decode".into(),
        name: "capture".into(),
        protocol: protocol.to_string(),
        port: "-".into(),
        location: Location { site: "-".into(), unit: "-".into(), room: None, bed: "-".into() },
        ..Default::default()
    };
    let mut normalizer = Normalizer::new(context, zone, nom.clone());
    // (receipt time, bytes) chunks: a capture keeps its times, so ids are reproducible; raw
    // input is one chunk at the current time (GATT: one value per line).
    let chunks: Vec<(Timestamp, Vec<u8>)> = if timed {
        capture::read(input)
            .map_err(UsageError::Input)?
            .into_iter()
            .filter(|c| c.direction == Direction::Rx)
            .map(|c| (c.time, c.bytes))
            .collect()
    } else if info.gatt {
        let text = std::str::from_utf8(input).map_err(|_| UsageError::Input("GATT input is one hex value per line".into()))?;
        let now = Timestamp::now();
        let mut v = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Each value is its own notification: give each its own receipt time (1 ms apart)
            // so that two equal values are two observations, as they were on the air.
            let at = Timestamp(now.0 + v.len() as i64);
            v.push((at, parse_hex(line).map_err(|e| UsageError::Input(format!("line {}: {e}", i + 1)))?));
        }
        v
    } else if hex_text {
        let text = std::str::from_utf8(input).map_err(|_| UsageError::Input("--hex input is not text".into()))?;
        vec![(Timestamp::now(), parse_hex(text).map_err(UsageError::Input)?)]
    } else {
        vec![(Timestamp::now(), input.to_vec())]
    };
    let mut summary = Summary::default();
    let mut events = Vec::new();
    let mut line = Vec::with_capacity(1024);
    let mut pending: Vec<Observation> = Vec::new();
    for (time, bytes) in chunks {
        events.clear();
        decoder.feed(&bytes, time, &mut events);
        let mut batch: Vec<Observation> = Vec::new();
        normalizer.observe_clock(
            events.iter().filter_map(|e| match e {
                Event::Measurement(m) => Some(m),
                _ => None,
            }),
            time,
        );
        for e in events.drain(..) {
            match e {
                Event::Measurement(m) => batch.push(normalizer.judged(m, time)),
                Event::Identity(id) => {
                    normalizer.identity(&id);
                }
                Event::Rejected { offset, error } => {
                    summary.rejected += 1;
                    let _ = writeln!(err, "rejected at byte {offset}: {error} ({})", error.reason());
                }
                Event::SequenceGap { expected, found } => {
                    let _ = writeln!(err, "sequence gap: expected {expected}, found {found}");
                }
                Event::NoisyLine(why) => {
                    let _ = writeln!(err, "wrong protocol or noisy line: {why}");
                }
                Event::Transmit(_) | Event::Session(_) | Event::Wave(_) | Event::Alarms(_) | Event::PatientId(_) => {}
            }
        }
        summary.observations += batch.len() as u64;
        if format == PayloadFormat::Hl7v2 {
            // PCD-01: one message per observation set. A set can go on in the next chunk (a
            // line split across reads), so the last set waits for it.
            pending.append(&mut batch);
            let sizes: Vec<usize> = hl7v2::group_sets(&pending, hl7v2::SetLimits::default()).iter().map(Vec::len).collect();
            let done: usize = sizes[..sizes.len().saturating_sub(1)].iter().sum();
            write_sets(out, &pending[..done], &nom);
            pending.drain(..done);
            continue;
        }
        for o in &batch {
            line.clear();
            match format {
                PayloadFormat::Canonical => canonical::write(&mut line, o, &nom),
                PayloadFormat::Fhir => fhir::write_observation(&mut line, o, &nom),
                PayloadFormat::Hl7v2 => {}
            }
            line.push(b'\n');
            let _ = out.write_all(&line);
        }
    }
    write_sets(out, &pending, &nom);
    Ok(summary)
}

/// Writes `observations` as PCD-01 messages, one per observation set ([`hl7v2::group_sets`]),
/// segments on their own lines for reading and a blank line after each message. MSH-7 is the
/// latest receipt time in the set, so a capture decodes to the same messages every time.
fn write_sets(out: &mut impl Write, observations: &[Observation], nom: &Nomenclature) {
    for set in hl7v2::group_sets(observations, hl7v2::SetLimits::default()) {
        let sent = set.iter().map(|o| o.reading.receipt_time).max().unwrap_or_else(Timestamp::now);
        if let Some(m) = hl7v2::oru_r01_set(&set, nom, sent) {
            let _ = out.write_all(m.replace('\r', "\n").trim_end().as_bytes());
            let _ = out.write_all(b"\n\n");
        }
    }
}

/// `medgw decode --list`.
pub fn list(out: &mut impl Write) {
    for p in registry::protocols() {
        let serial = match p.serial {
            Some(settings) => settings.to_string(),
            None if p.gatt => "BLE GATT value per line".to_string(),
            None => "-".to_string(),
        };
        let _ = writeln!(out, "{:<22} {:<24} {}", p.name, serial, p.description);
    }
}
