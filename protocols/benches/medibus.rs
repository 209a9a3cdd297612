//! Decode throughput benchmark: medibus (to be written).
fn main() {}
