//! Bluetooth GATT health characteristics (to be written).
