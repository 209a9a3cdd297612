//! Simulator: masimo (to be written).
