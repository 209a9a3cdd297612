//! medibus (to be written).
