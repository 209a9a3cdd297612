//! Simulator: link (to be written).
