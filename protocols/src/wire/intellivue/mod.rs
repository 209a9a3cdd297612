//! Philips IntelliVue MIB/RS232 Data Export (to be written).
