//! Decode throughput benchmark: link (to be written).
fn main() {}
