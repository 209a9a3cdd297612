//! Decode throughput benchmark: gatt (to be written).
fn main() {}
