//! medgw sensor-node firmware (see the firmware issue): drivers, signal processing and the
//! medgw link, written against embedded-hal traits so that the logic is tested on the host.
#![no_std]
