//! # medgw, the gateway daemon
//!
//! Sources (serial ports, simulators) → decoders (`medgw-protocols`) → normaliser (identity,
//! bed, patient, time quality) → durable buffer (SQLite) → MQTT sink, one task per component
//! joined by bounded channels (ARCHITECTURE.md). This crate holds everything with I/O; the
//! protocol logic is in `medgw-protocols`.

pub mod adt;
#[cfg(feature = "tools")]
pub mod bench;
#[cfg(feature = "tools")]
pub mod bench_mllp;
#[cfg(feature = "tools")]
pub mod bench_waves;
pub mod buffer;
pub mod capture;
pub mod cli;
pub mod config;
pub mod decode_cmd;
#[cfg(feature = "tools")]
pub mod demo;
pub mod events;
pub mod int_hash;
pub mod log_limit;
pub mod nomenclature_file;
pub mod normalize;
pub mod open_files;
pub mod pipeline;
#[cfg(feature = "tools")]
pub mod pki;
pub mod simulate;
pub mod simulate_tcp;
pub mod sink;
pub mod source;
pub mod status;
pub mod telemetry;
