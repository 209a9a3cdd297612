//! Decode throughput benchmark: nonin (to be written).
fn main() {}
