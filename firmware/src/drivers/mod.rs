//! Sensor drivers written against the embedded-hal 1.0 traits, generic over the HAL.
//!
//! Each driver owns its bus handle, speaks only in register transactions (so the tests can list
//! the exact I2C traffic with embedded-hal-mock) and returns a typed error that keeps the bus
//! error it wraps.

pub mod max30102;
pub mod tmp117;
