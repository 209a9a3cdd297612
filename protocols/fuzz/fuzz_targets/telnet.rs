//! Fuzz target: the RFC 2217 Telnet client on arbitrary network bytes.
//!
//! The bytes arrive in two chunks (split where the first byte says) with a device request sent
//! in between: never panics; the device data is never longer than the network bytes it came
//! from; a port reported configured has all four settings confirmed; what is sent back stays
//! bounded. Then the same bytes, escaped as a server sends data (0xFF doubled), go to a client
//! whose server has agreed to binary mode: they must come out exactly, in any chunking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medgw_protocols::wire::telnet::{ComPort, Notice, Parity, PortSettings, Telnet, DO, HELD_MAX, IAC, OPT_BINARY, SB_MAX, WILL};

const SETTINGS: PortSettings = PortSettings { baud: 19200, data_bits: 8, parity: Parity::Even, stop_bits: 1 };

fuzz_target!(|data: &[u8]| {
    let split = data.first().map(|b| *b as usize % (data.len() + 1)).unwrap_or(0);
    let mut t = Telnet::new(SETTINGS);
    t.start();
    let mut out = Vec::new();
    t.take_output(&mut out);
    let mut device = Vec::new();
    t.receive(&data[..split], &mut device);
    t.send_data(&data[split..data.len().min(split + 64)]);
    t.receive(&data[split..], &mut device);
    assert!(device.len() <= data.len());
    if t.com_port() == ComPort::Configured {
        let c = t.confirmed();
        assert!(c.baud.is_some() && c.data_bits.is_some() && c.parity.is_some() && c.stop_bits.is_some());
    }
    for n in t.take_notices() {
        if let Notice::Signature(s) = n {
            assert!(s.len() <= 3 * SB_MAX, "a signature longer than a kept subnegotiation");
        }
    }
    out.clear();
    t.take_output(&mut out);
    // Per network byte at most one three-byte answer, the settings once per agreement, our
    // signature per request, and what was held for the device.
    assert!(out.len() <= 64 * data.len() + 2 * 64 + HELD_MAX + 64, "{} bytes out for {} in", out.len(), data.len());

    // Data transparency: a server in binary mode doubles 0xFF; the client undoes exactly that.
    let mut t = Telnet::new(SETTINGS);
    let mut device = Vec::new();
    t.receive(&[IAC, WILL, OPT_BINARY, IAC, DO, OPT_BINARY], &mut device);
    assert!(device.is_empty());
    let mut escaped = Vec::with_capacity(data.len() * 2);
    for &b in data {
        escaped.push(b);
        if b == IAC {
            escaped.push(IAC);
        }
    }
    let chunk = 1 + split % 7;
    for c in escaped.chunks(chunk) {
        t.receive(c, &mut device);
    }
    assert_eq!(device, data);
});
