//! # medgw-protocols
//!
//! Everything medgw knows about bytes and codes, with no I/O: the bedside-device protocols, the
//! canonical observation, the IEEE 11073-10101 nomenclature and the FHIR R4 / HL7 v2 encoders.
//!
//! The crate is layered like smoltcp's `wire` and `iface`:
//! - [`wire`]: checked views and parsers of one frame or message per protocol. No allocation, no
//!   panics, `no_std`: the firmware uses these with `default-features = false`.
//! - [`framing`]: fed accumulators that find frames in a byte stream and resynchronise.
//! - [`observation`], [`nomenclature`] (`alloc`): the canonical model and the codes in use.
//! - [`alarm`] (`alloc`): alarm conditions as devices report them and the per-device lifecycle
//!   tracker (start / update / end).
//! - [`decode`] (`alloc`): the [`decode::Decoder`] interface the gateway drives: bytes and time
//!   in; measurements, rejections and bytes to send out.
//! - [`encode`] (`alloc`): canonical JSON, FHIR R4 `Observation`/`Device`, HL7 v2.6 PCD-01, MLLP.
//! - [`wave`] (`alloc`): waveform chunks and segments, and the segmenter between them.
//!
//! Features: `std` (default) implies `alloc`. Without either, the crate is the wire layer, the
//! MDC tables, [`decimal::Decimal`], [`time`] and [`quality`].
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(all(test, not(feature = "alloc")))]
extern crate alloc;

pub mod decimal;
pub mod error;
pub mod framing;
pub mod mdc;
pub mod quality;
pub mod serial;
pub mod time;
pub mod units;
pub mod wire;

#[cfg(feature = "alloc")]
pub mod alarm;
#[cfg(feature = "alloc")]
pub mod association;
#[cfg(feature = "alloc")]
pub mod decode;
#[cfg(feature = "alloc")]
pub mod encode;
#[cfg(feature = "alloc")]
pub mod hl7;
#[cfg(feature = "alloc")]
pub mod lock;
#[cfg(feature = "alloc")]
pub mod nomenclature;
#[cfg(feature = "alloc")]
pub mod observation;
#[cfg(feature = "alloc")]
pub mod registry;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "alloc")]
pub mod wave;

pub use decimal::Decimal;
pub use error::{Error, Result};
pub use mdc::MdcCode;
pub use time::Timestamp;
