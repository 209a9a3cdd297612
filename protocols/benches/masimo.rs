//! Decode throughput benchmark: masimo (to be written).
fn main() {}
