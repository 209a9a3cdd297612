//! Simulator: gatt (to be written).
