//! Simulator: nonin (to be written).
