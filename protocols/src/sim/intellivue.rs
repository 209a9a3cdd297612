//! Simulator: intellivue (to be written).
