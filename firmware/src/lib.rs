//! medgw sensor-node firmware: a pulse oximeter and thermometer that speaks the medgw link.
//!
//! ```text
//!  MAX30102 ──I2C──► drivers::max30102 ─┐                 ┌─► link (batches, ring, acks, time)
//!  (or synth)                           ├─► app::App ──────┤        │
//!  TMP117 ────I2C──► drivers::tmp117 ───┘   100 Hz / 1 s   └─ dsp   ▼  COBS frames
//!                                                                 UART ──► medgw gateway
//! ```
//!
//! Everything here is `no_std`, allocation-free and host-testable: drivers take embedded-hal 1.0
//! traits, the app takes time as an argument, the link uses `medgw-protocols`' wire layer
//! (`default-features = false`). The board image (`src/bin/medgw-node.rs`) adds the reset
//! vector, SysTick and a UART.
#![no_std]
#![forbid(unsafe_code)]

pub mod app;
pub mod drivers;
pub mod dsp;
pub mod identity;
pub mod link;
pub mod ring;
pub mod synth;

pub use app::App;

/// Model string of the Hello.
pub const MODEL: &str = "medgw-node";
/// Firmware version of the Hello.
pub const FIRMWARE: &str = concat!("fw-", env!("CARGO_PKG_VERSION"));
