//! masimo (to be written).
