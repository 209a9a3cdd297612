//! Simulator: medibus (to be written).
