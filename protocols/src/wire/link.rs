//! link (to be written).
