//! Decode throughput benchmark: intellivue (to be written).
fn main() {}
