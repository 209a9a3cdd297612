//! Wire formats: one module per device protocol or message family.
//!
//! Every parser here takes bytes and returns a value or an [`crate::Error`]; none allocates
//! (outside the `alloc`-gated stream decoders and `telnet`), panics or does I/O, so the same
//! code runs on the firmware and in the fuzzer.

pub mod gatt;
pub mod intellivue;
pub mod link;
pub mod masimo;
pub mod medibus;
pub mod nonin;
pub mod sfloat;
#[cfg(feature = "alloc")]
pub mod telnet;
