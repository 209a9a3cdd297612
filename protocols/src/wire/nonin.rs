//! nonin (to be written).
