//! Telnet with the COM-PORT-OPTION (RFC 2217), sans-IO: bytes from the network in, device
//! bytes and bytes to send back out. No sockets, no clocks; the gateway's `source/rfc2217.rs`
//! drives it over TCP. Bytes from the network are hostile input: nothing here panics, and what
//! it keeps is bounded ([`SB_MAX`], [`HELD_MAX`]); the fuzz target `telnet` holds it to that.
//!
//! A device server in RFC 2217 mode carries the serial port's bytes inside a Telnet connection
//! (RFC 854) and lets the client set the remote port's baud rate, data size, parity and stop
//! size with subnegotiations (RFC 855) of option 44, so the gateway configures a network port
//! as it configures a local one.
//!
//! ```text
//!  data byte 0xFF          IAC IAC                                   (RFC 854, p. 14)
//!  option negotiation      IAC WILL|WONT|DO|DONT <option>            (RFC 854, pp. 2-4, 14)
//!  subnegotiation          IAC SB <option> <parameters...> IAC SE    (RFC 855, p. 2)
//!  COM-PORT command        IAC SB 44 <command> <value...> IAC SE     (RFC 2217, pp. 3-4)
//!                          client -> server: command 0..12; server -> client: command + 100
//!  SET-BAUDRATE            IAC SB 44 1 <4 bytes, network order> IAC SE  (RFC 2217, p. 6)
//!  SET-DATASIZE            IAC SB 44 2 <5|6|7|8> IAC SE                 (RFC 2217, p. 6)
//!  SET-PARITY              IAC SB 44 3 <1 none|2 odd|3 even> IAC SE     (RFC 2217, p. 7)
//!  SET-STOPSIZE            IAC SB 44 4 <1|2|3 = 1.5> IAC SE             (RFC 2217, p. 7)
//!  SET-CONTROL             IAC SB 44 5 <1 = no flow control> IAC SE     (RFC 2217, p. 8)
//! ```
//!
//! Inside a subnegotiation a parameter byte 0xFF is doubled like data (RFC 855, p. 2; RFC 2217,
//! p. 4). Options are negotiated with the RFC 1143 "Q method" without its queue bits (medgw
//! never asks to turn an option off), which is what keeps two implementations from answering
//! each other's acknowledgements for ever (RFC 854, p. 3, rule 2; RFC 1143, section 7).
//!
//! Accepted: TRANSMIT-BINARY (RFC 856) both ways, because device data is 8-bit and NVT mode
//! would turn CR into CR NUL; SUPPRESS-GO-AHEAD (RFC 858) both ways; COM-PORT-OPTION from
//! medgw's side (the client "WILL"; RFC 2217, p. 2). Every other option is refused with DONT
//! or WONT (RFC 854, p. 3: a party may refuse any option).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// RFC 854, p. 14: the Telnet command codes.
pub const SE: u8 = 240;
pub const NOP: u8 = 241;
pub const SB: u8 = 250;
pub const WILL: u8 = 251;
pub const WONT: u8 = 252;
pub const DO: u8 = 253;
pub const DONT: u8 = 254;
pub const IAC: u8 = 255;

/// Options (IANA Telnet option registry): TRANSMIT-BINARY (RFC 856), ECHO (RFC 857),
/// SUPPRESS-GO-AHEAD (RFC 858), COM-PORT-OPTION (RFC 2217).
pub const OPT_BINARY: u8 = 0;
pub const OPT_ECHO: u8 = 1;
pub const OPT_SGA: u8 = 3;
pub const OPT_COM_PORT: u8 = 44;

/// RFC 2217, pp. 3-4: COM-PORT-OPTION commands as the client sends them; the access server's
/// replies and notifications carry the same number plus [`cmd::SERVER`].
pub mod cmd {
    pub const SIGNATURE: u8 = 0;
    pub const SET_BAUDRATE: u8 = 1;
    pub const SET_DATASIZE: u8 = 2;
    pub const SET_PARITY: u8 = 3;
    pub const SET_STOPSIZE: u8 = 4;
    pub const SET_CONTROL: u8 = 5;
    pub const NOTIFY_LINESTATE: u8 = 6;
    pub const NOTIFY_MODEMSTATE: u8 = 7;
    pub const FLOWCONTROL_SUSPEND: u8 = 8;
    pub const FLOWCONTROL_RESUME: u8 = 9;
    pub const SET_LINESTATE_MASK: u8 = 10;
    pub const SET_MODEMSTATE_MASK: u8 = 11;
    pub const PURGE_DATA: u8 = 12;
    /// Server-to-client codes are the client's plus 100 (RFC 2217, p. 4).
    pub const SERVER: u8 = 100;
}

/// SET-CONTROL value 1: "use no flow control (outbound/both)" (RFC 2217, p. 8) — what a local
/// port opened by medgw uses.
pub const CONTROL_NO_FLOW: u8 = 1;

/// The longest subnegotiation kept (a signature text is the longest medgw expects); longer ones
/// are read to their end and dropped, so a hostile server cannot grow memory.
pub const SB_MAX: usize = 256;
/// Device-bound bytes held while the server has suspended data (FLOWCONTROL-SUSPEND); beyond
/// this the oldest requests are dropped (a poll that late is worthless anyway).
pub const HELD_MAX: usize = 4096;

/// The signature medgw gives when the server asks for it (RFC 2217, p. 5); the workspace's
/// version, which the gateway shares.
const SIGNATURE: &[u8] = concat!("medgw ", env!("CARGO_PKG_VERSION")).as_bytes();

/// The serial port settings asked of the device server: what SET-BAUDRATE, SET-DATASIZE,
/// SET-PARITY and SET-STOPSIZE send (RFC 2217, pp. 6-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSettings {
    pub baud: u32,
    /// 5 to 8.
    pub data_bits: u8,
    pub parity: Parity,
    /// The RFC 2217 stop size code: 1 one, 2 two, 3 one and a half.
    pub stop_bits: u8,
}

/// The parities medgw asks for (RFC 2217 also names mark and space, which no device here uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Odd,
    Even,
}

/// One side of an option (RFC 1143, section 7, without the queue bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Q {
    #[default]
    No,
    Yes,
    /// We asked to enable it and wait for the answer.
    WantYes,
}

/// Where the COM-PORT-OPTION negotiation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComPort {
    /// WILL sent, no answer yet.
    Offered,
    /// The server said DO: settings sent, waiting for their replies.
    Configuring,
    /// All four settings acknowledged (the values the server reports are in [`Confirmed`]).
    Configured,
    /// The server said DONT: it is not an RFC 2217 server (or has the option disabled).
    Refused,
}

/// The port settings as the server reports them after SET-* (RFC 2217: the reply carries "the
/// value actually set", which may differ from the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confirmed {
    pub baud: Option<u32>,
    pub data_bits: Option<u8>,
    /// RFC 2217 parity code: 1 none, 2 odd, 3 even, 4 mark, 5 space.
    pub parity: Option<u8>,
    /// RFC 2217 stop size code: 1 one, 2 two, 3 one and a half.
    pub stop_bits: Option<u8>,
    pub control: Option<u8>,
}

impl Confirmed {
    fn complete(&self) -> bool {
        self.baud.is_some() && self.data_bits.is_some() && self.parity.is_some() && self.stop_bits.is_some()
    }

    /// Differences between what was asked and what the server reports, for the log.
    pub fn mismatches(&self, asked: &PortSettings) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(b) = self.baud.filter(|b| *b != asked.baud) {
            out.push(format!("baud {b} (asked {})", asked.baud));
        }
        if let Some(d) = self.data_bits.filter(|d| *d != asked.data_bits) {
            out.push(format!("data bits {d} (asked {})", asked.data_bits));
        }
        if let Some(p) = self.parity.filter(|p| *p != parity_code(asked.parity)) {
            out.push(format!("parity code {p} (asked {})", parity_code(asked.parity)));
        }
        if let Some(s) = self.stop_bits.filter(|s| *s != asked.stop_bits) {
            out.push(format!("stop size code {s} (asked {})", asked.stop_bits));
        }
        out
    }
}

/// Things worth a log line that do not change the data path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The server refused or dropped an option medgw offered or asked for.
    OptionRefused { option: u8 },
    /// NOTIFY-LINESTATE (RFC 2217, p. 10): overrun, parity or framing errors on the remote port.
    LineState(u8),
    /// NOTIFY-MODEMSTATE (RFC 2217, p. 11).
    ModemState(u8),
    /// The server's signature text (RFC 2217, p. 5).
    Signature(String),
    /// A subnegotiation medgw does not understand or that was malformed; ignored.
    Ignored { option: u8, command: Option<u8> },
    /// Device-bound bytes dropped while the server held data suspended.
    HeldDropped(usize),
}

/// The receiver's position in the Telnet byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rx {
    Data,
    /// After IAC.
    Iac,
    /// After IAC WILL|WONT|DO|DONT: the option byte is next.
    Verb(u8),
    /// After IAC SB: the option byte is next.
    SbOption,
    /// Inside a subnegotiation.
    Sb,
    /// Inside a subnegotiation, after IAC.
    SbIac,
}

/// The client side of a Telnet connection with COM-PORT-OPTION.
#[derive(Debug)]
pub struct Telnet {
    settings: PortSettings,
    rx: Rx,
    sb_option: u8,
    sb: Vec<u8>,
    sb_overflow: bool,
    /// Our side (WILL/WONT) and the server's side (DO/DONT... as the server's WILL) per option.
    us: [Q; 256],
    him: [Q; 256],
    com_port: ComPort,
    confirmed: Confirmed,
    /// The last data byte received was CR in NVT (non-binary) mode: a NUL after it is padding
    /// (RFC 854, p. 11: "CR NUL").
    rx_cr: bool,
    out: Vec<u8>,
    suspended: bool,
    held: Vec<u8>,
    notices: Vec<Notice>,
}

/// RFC 2217 parity code (p. 7).
pub fn parity_code(p: Parity) -> u8 {
    match p {
        Parity::None => 1,
        Parity::Odd => 2,
        Parity::Even => 3,
    }
}

impl Telnet {
    /// A connection that will configure the remote port to `settings`.
    pub fn new(settings: PortSettings) -> Telnet {
        Telnet {
            settings,
            rx: Rx::Data,
            sb_option: 0,
            sb: Vec::with_capacity(32),
            sb_overflow: false,
            us: [Q::No; 256],
            him: [Q::No; 256],
            com_port: ComPort::Offered,
            confirmed: Confirmed::default(),
            rx_cr: false,
            out: Vec::with_capacity(64),
            suspended: false,
            held: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// The opening offers: binary both ways, no go-ahead both ways, and COM-PORT-OPTION from
    /// our side. The port settings follow once the server says DO COM-PORT-OPTION (RFC 855,
    /// p. 1: subnegotiation only after the option is agreed).
    pub fn start(&mut self) {
        for opt in [OPT_BINARY, OPT_SGA, OPT_COM_PORT] {
            self.us[opt as usize] = Q::WantYes;
            self.command(WILL, opt);
        }
        for opt in [OPT_BINARY, OPT_SGA] {
            self.him[opt as usize] = Q::WantYes;
            self.command(DO, opt);
        }
    }

    pub fn com_port(&self) -> ComPort {
        self.com_port
    }

    pub fn confirmed(&self) -> Confirmed {
        self.confirmed
    }

    /// Our side and the server's side of `option`.
    pub fn option(&self, option: u8) -> (Q, Q) {
        (self.us[option as usize], self.him[option as usize])
    }

    /// FLOWCONTROL-SUSPEND is in force.
    pub fn suspended(&self) -> bool {
        self.suspended
    }

    /// Moves the bytes to send to the server into `into`.
    pub fn take_output(&mut self, into: &mut Vec<u8>) {
        into.append(&mut self.out);
    }

    pub fn take_notices(&mut self) -> Vec<Notice> {
        core::mem::take(&mut self.notices)
    }

    /// Network bytes in; the device's bytes are appended to `data`. Any chunking works: the
    /// parser keeps its place across calls.
    pub fn receive(&mut self, input: &[u8], data: &mut Vec<u8>) {
        for &b in input {
            match self.rx {
                Rx::Data => {
                    if b == IAC {
                        self.rx = Rx::Iac;
                    } else {
                        self.data_byte(b, data);
                    }
                }
                Rx::Iac => {
                    self.rx = Rx::Data;
                    match b {
                        IAC => self.data_byte(IAC, data),
                        WILL | WONT | DO | DONT => self.rx = Rx::Verb(b),
                        SB => self.rx = Rx::SbOption,
                        // NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, a stray SE: no meaning for a
                        // serial byte stream (RFC 854, pp. 13-14); ignored.
                        _ => {}
                    }
                }
                Rx::Verb(verb) => {
                    self.rx = Rx::Data;
                    self.negotiate(verb, b);
                }
                Rx::SbOption => {
                    self.sb_option = b;
                    self.sb.clear();
                    self.sb_overflow = false;
                    self.rx = Rx::Sb;
                }
                Rx::Sb => {
                    if b == IAC {
                        self.rx = Rx::SbIac;
                    } else {
                        self.sb_push(b);
                    }
                }
                Rx::SbIac => match b {
                    SE => {
                        self.rx = Rx::Data;
                        self.subnegotiation();
                    }
                    IAC => {
                        self.sb_push(IAC);
                        self.rx = Rx::Sb;
                    }
                    // IAC followed by anything else inside SB is a protocol error (RFC 855 ends
                    // a subnegotiation only with IAC SE): drop the subnegotiation and read the
                    // byte as the command it says it is.
                    _ => {
                        self.notices.push(Notice::Ignored { option: self.sb_option, command: self.sb.first().copied() });
                        self.rx = Rx::Iac;
                        self.receive(&[b], data);
                    }
                },
            }
        }
    }

    /// Device-bound bytes: 0xFF doubled (RFC 854, p. 14); in NVT mode a bare CR is sent as CR
    /// NUL (RFC 854, p. 11). Held while the server has suspended data (RFC 2217, p. 11).
    pub fn send_data(&mut self, bytes: &[u8]) {
        let binary = self.us[OPT_BINARY as usize] == Q::Yes;
        let mut escaped = Vec::with_capacity(bytes.len() + 8);
        for (i, &b) in bytes.iter().enumerate() {
            escaped.push(b);
            if b == IAC {
                escaped.push(IAC);
            } else if b == b'\r' && !binary && bytes.get(i + 1) != Some(&b'\n') {
                escaped.push(0);
            }
        }
        if self.suspended {
            self.held.extend_from_slice(&escaped);
            if self.held.len() > HELD_MAX {
                let drop = self.held.len() - HELD_MAX;
                self.held.drain(..drop);
                self.notices.push(Notice::HeldDropped(drop));
            }
        } else {
            self.out.extend_from_slice(&escaped);
        }
    }

    fn data_byte(&mut self, b: u8, data: &mut Vec<u8>) {
        // The server's side of BINARY governs what it sends (RFC 856, p. 1).
        if self.him[OPT_BINARY as usize] != Q::Yes {
            let pad = self.rx_cr && b == 0;
            self.rx_cr = b == b'\r';
            if pad {
                return;
            }
        }
        data.push(b);
    }

    fn sb_push(&mut self, b: u8) {
        if self.sb.len() < SB_MAX {
            self.sb.push(b);
        } else {
            self.sb_overflow = true;
        }
    }

    fn command(&mut self, verb: u8, option: u8) {
        self.out.extend_from_slice(&[IAC, verb, option]);
    }

    /// Options medgw will enable on its own side.
    fn we_support(option: u8) -> bool {
        matches!(option, OPT_BINARY | OPT_SGA | OPT_COM_PORT)
    }

    /// Options medgw lets the server enable.
    fn he_may(option: u8) -> bool {
        matches!(option, OPT_BINARY | OPT_SGA)
    }

    /// RFC 1143, section 7 (the Q method): answer only what changes the state, so that
    /// acknowledgements are never acknowledged.
    fn negotiate(&mut self, verb: u8, option: u8) {
        let i = option as usize;
        match verb {
            WILL => match self.him[i] {
                Q::No if Self::he_may(option) => {
                    self.him[i] = Q::Yes;
                    self.command(DO, option);
                }
                Q::No => self.command(DONT, option),
                Q::WantYes => self.him[i] = Q::Yes,
                Q::Yes => {}
            },
            WONT => match self.him[i] {
                Q::Yes => {
                    self.him[i] = Q::No;
                    self.command(DONT, option);
                }
                Q::WantYes => {
                    self.him[i] = Q::No;
                    self.notices.push(Notice::OptionRefused { option });
                }
                Q::No => {}
            },
            DO => match self.us[i] {
                Q::No if Self::we_support(option) => {
                    self.us[i] = Q::Yes;
                    self.command(WILL, option);
                    self.enabled(option);
                }
                Q::No => self.command(WONT, option),
                Q::WantYes => {
                    self.us[i] = Q::Yes;
                    self.enabled(option);
                }
                Q::Yes => {}
            },
            DONT => match self.us[i] {
                Q::Yes => {
                    self.us[i] = Q::No;
                    self.command(WONT, option);
                    self.disabled(option);
                }
                Q::WantYes => {
                    self.us[i] = Q::No;
                    self.notices.push(Notice::OptionRefused { option });
                    self.disabled(option);
                }
                Q::No => {}
            },
            _ => {}
        }
    }

    /// Our side of `option` just became enabled.
    fn enabled(&mut self, option: u8) {
        if option == OPT_COM_PORT && self.com_port != ComPort::Configured {
            self.com_port = ComPort::Configuring;
            self.confirmed = Confirmed::default();
            let s = self.settings;
            self.com_port_command(cmd::SET_BAUDRATE, &s.baud.to_be_bytes());
            self.com_port_command(cmd::SET_DATASIZE, &[s.data_bits]);
            self.com_port_command(cmd::SET_PARITY, &[parity_code(s.parity)]);
            self.com_port_command(cmd::SET_STOPSIZE, &[s.stop_bits]);
            self.com_port_command(cmd::SET_CONTROL, &[CONTROL_NO_FLOW]);
        }
    }

    fn disabled(&mut self, option: u8) {
        if option == OPT_COM_PORT {
            self.com_port = ComPort::Refused;
        }
    }

    /// IAC SB 44 <command> <value, 0xFF doubled> IAC SE (RFC 855, p. 2; RFC 2217, p. 4).
    fn com_port_command(&mut self, command: u8, value: &[u8]) {
        self.out.extend_from_slice(&[IAC, SB, OPT_COM_PORT, command]);
        for &b in value {
            self.out.push(b);
            if b == IAC {
                self.out.push(IAC);
            }
        }
        self.out.extend_from_slice(&[IAC, SE]);
    }

    fn subnegotiation(&mut self) {
        let option = self.sb_option;
        if option != OPT_COM_PORT || self.sb_overflow || self.us[OPT_COM_PORT as usize] != Q::Yes {
            // Not an option we agreed to, or too long to be one of ours (RFC 855: only agreed
            // options may be subnegotiated).
            self.notices.push(Notice::Ignored { option, command: self.sb.first().copied() });
            return;
        }
        let Some((&command, value)) = self.sb.split_first() else {
            self.notices.push(Notice::Ignored { option, command: None });
            return;
        };
        let byte = value.first().copied().filter(|_| value.len() == 1);
        let reply = command.wrapping_sub(cmd::SERVER);
        match (reply, byte) {
            (cmd::SIGNATURE, _) if value.is_empty() => {
                // The server asks for ours (RFC 2217, p. 5).
                self.com_port_command(cmd::SIGNATURE, SIGNATURE);
            }
            (cmd::SIGNATURE, _) => self.notices.push(Notice::Signature(String::from_utf8_lossy(value).into_owned())),
            (cmd::SET_BAUDRATE, _) => match <[u8; 4]>::try_from(value) {
                Ok(v) => self.confirmed.baud = Some(u32::from_be_bytes(v)),
                Err(_) => self.notices.push(Notice::Ignored { option, command: Some(command) }),
            },
            (cmd::SET_DATASIZE, Some(v)) => self.confirmed.data_bits = Some(v),
            (cmd::SET_PARITY, Some(v)) => self.confirmed.parity = Some(v),
            (cmd::SET_STOPSIZE, Some(v)) => self.confirmed.stop_bits = Some(v),
            (cmd::SET_CONTROL, Some(v)) => self.confirmed.control = Some(v),
            (cmd::NOTIFY_LINESTATE, Some(v)) => self.notices.push(Notice::LineState(v)),
            (cmd::NOTIFY_MODEMSTATE, Some(v)) => self.notices.push(Notice::ModemState(v)),
            (cmd::FLOWCONTROL_SUSPEND, None) => self.suspended = true,
            (cmd::FLOWCONTROL_RESUME, None) => {
                self.suspended = false;
                self.out.append(&mut self.held);
            }
            // Mask and purge acknowledgements: medgw sends none of these requests.
            (cmd::SET_LINESTATE_MASK | cmd::SET_MODEMSTATE_MASK | cmd::PURGE_DATA, _) => {}
            _ => self.notices.push(Notice::Ignored { option, command: Some(command) }),
        }
        if self.com_port == ComPort::Configuring && self.confirmed.complete() {
            self.com_port = ComPort::Configured;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The device entry of the tests: 19200 baud, 7 data bits, even parity, 2 stop bits.
    const SETTINGS: PortSettings = PortSettings { baud: 19200, data_bits: 7, parity: Parity::Even, stop_bits: 2 };

    /// What ser2net 4.3.11 (Debian bookworm) sends first on a `telnet(rfc2217)` accepter,
    /// captured on this machine: WILL SGA, DO SGA, WILL ECHO, DONT ECHO, DO BINARY,
    /// WILL BINARY, DO COM-PORT-OPTION.
    const SER2NET_GREETING: &[u8] = &[IAC, WILL, 3, IAC, DO, 3, IAC, WILL, 1, IAC, DONT, 1, IAC, DO, 0, IAC, WILL, 0, IAC, DO, 44];

    fn out(t: &mut Telnet) -> Vec<u8> {
        let mut v = Vec::new();
        t.take_output(&mut v);
        v
    }

    fn feed(t: &mut Telnet, bytes: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        t.receive(bytes, &mut data);
        data
    }

    /// The four SET-* subnegotiations and SET-CONTROL for [`SETTINGS`], byte for byte.
    fn settings_bytes() -> Vec<u8> {
        let mut v = vec![IAC, SB, 44, 1, 0x00, 0x00, 0x4B, 0x00, IAC, SE]; // 19200 = 0x4B00
        v.extend_from_slice(&[IAC, SB, 44, 2, 7, IAC, SE]);
        v.extend_from_slice(&[IAC, SB, 44, 3, 3, IAC, SE]); // even = 3
        v.extend_from_slice(&[IAC, SB, 44, 4, 2, IAC, SE]);
        v.extend_from_slice(&[IAC, SB, 44, 5, 1, IAC, SE]); // no flow control
        v
    }

    /// The server's replies: command + 100 with the value set (RFC 2217, p. 4).
    fn replies() -> Vec<u8> {
        let mut v = vec![IAC, SB, 44, 101, 0x00, 0x00, 0x4B, 0x00, IAC, SE];
        v.extend_from_slice(&[IAC, SB, 44, 102, 7, IAC, SE]);
        v.extend_from_slice(&[IAC, SB, 44, 103, 3, IAC, SE]);
        v.extend_from_slice(&[IAC, SB, 44, 104, 2, IAC, SE]);
        v.extend_from_slice(&[IAC, SB, 44, 105, 1, IAC, SE]);
        v
    }

    #[test]
    fn offers_then_sets_the_port_once_the_server_says_do() {
        let mut t = Telnet::new(SETTINGS);
        t.start();
        assert_eq!(
            out(&mut t),
            [IAC, WILL, 0, IAC, WILL, 3, IAC, WILL, 44, IAC, DO, 0, IAC, DO, 3],
            "WILL BINARY, WILL SGA, WILL COM-PORT-OPTION, DO BINARY, DO SGA"
        );
        // Nothing about the port before the server agrees (RFC 855).
        assert_eq!(t.com_port(), ComPort::Offered);
        assert!(feed(&mut t, &[IAC, DO, 44]).is_empty());
        assert_eq!(out(&mut t), settings_bytes(), "DO acknowledges our WILL: no WILL again, only the settings");
        assert_eq!(t.com_port(), ComPort::Configuring);
        assert!(feed(&mut t, &replies()).is_empty());
        assert_eq!(t.com_port(), ComPort::Configured);
        assert_eq!(
            t.confirmed(),
            Confirmed { baud: Some(19200), data_bits: Some(7), parity: Some(3), stop_bits: Some(2), control: Some(1) }
        );
        assert!(t.confirmed().mismatches(&SETTINGS).is_empty());
        assert!(out(&mut t).is_empty(), "replies are not answered");
    }

    #[test]
    fn ser2net_greeting_is_answered_without_loops() {
        let mut t = Telnet::new(SETTINGS);
        t.start();
        out(&mut t);
        assert!(feed(&mut t, SER2NET_GREETING).is_empty());
        // SGA, BINARY and COM-PORT-OPTION were ours to ask: their acknowledgements get no answer.
        // ECHO is refused (DONT ECHO); DONT ECHO for an option already off gets none (RFC 854).
        let mut want = vec![IAC, DONT, 1];
        want.extend_from_slice(&settings_bytes());
        assert_eq!(out(&mut t), want);
        assert_eq!(t.option(OPT_BINARY), (Q::Yes, Q::Yes));
        assert_eq!(t.option(OPT_SGA), (Q::Yes, Q::Yes));
        assert_eq!(t.option(OPT_ECHO), (Q::No, Q::No));
        // The same greeting again (a confused server) changes nothing and is not answered.
        assert!(feed(&mut t, SER2NET_GREETING).is_empty());
        assert_eq!(out(&mut t), [IAC, DONT, 1], "only the refusal is repeated, never an acknowledgement");
    }

    #[test]
    fn unknown_options_are_refused_both_ways() {
        let mut t = Telnet::new(SETTINGS);
        // TERMINAL-TYPE (24) and NAWS (31) asked of us; STATUS (5) offered by the server.
        feed(&mut t, &[IAC, DO, 24, IAC, DO, 31, IAC, WILL, 5]);
        assert_eq!(out(&mut t), [IAC, WONT, 24, IAC, WONT, 31, IAC, DONT, 5]);
        // A server that asks for COM-PORT-OPTION before we offered gets WILL and the settings.
        feed(&mut t, &[IAC, DO, 44]);
        let mut want = vec![IAC, WILL, 44];
        want.extend_from_slice(&settings_bytes());
        assert_eq!(out(&mut t), want);
    }

    #[test]
    fn a_server_without_com_port_refuses_it() {
        let mut t = Telnet::new(SETTINGS);
        t.start();
        out(&mut t);
        feed(&mut t, &[IAC, DONT, 44]);
        assert_eq!(t.com_port(), ComPort::Refused);
        assert!(out(&mut t).is_empty(), "a refusal of our request is not answered");
        assert!(t.take_notices().contains(&Notice::OptionRefused { option: 44 }));
    }

    #[test]
    fn iac_in_data_is_doubled_both_ways() {
        let mut t = Telnet::new(SETTINGS);
        t.start();
        feed(&mut t, &[IAC, WILL, 0, IAC, DO, 0]);
        out(&mut t);
        // Received: IAC IAC is one 0xFF data byte (RFC 854, p. 14).
        assert_eq!(feed(&mut t, &[0x01, IAC, IAC, 0x02, IAC, IAC, IAC, IAC]), [0x01, 0xFF, 0x02, 0xFF, 0xFF]);
        // Sent: every 0xFF doubled, nothing else touched in binary mode.
        t.send_data(&[0xFF, 0x0D, 0x00, 0xFF]);
        assert_eq!(out(&mut t), [IAC, IAC, 0x0D, 0x00, IAC, IAC]);
    }

    #[test]
    fn subnegotiations_and_escapes_split_across_chunks() {
        let mut stream = vec![IAC, DO, 44];
        stream.extend_from_slice(&[b'a', IAC, IAC, b'b']);
        stream.extend_from_slice(&replies());
        // A baud rate with 0xFF in it travels doubled inside the subnegotiation.
        stream.extend_from_slice(&[IAC, SB, 44, 101, 0x00, 0x01, IAC, IAC, 0x00, IAC, SE, b'c']);
        for cut in 0..=stream.len() {
            for size in [1, 2, 3, 7] {
                let mut t = Telnet::new(SETTINGS);
                t.start();
                let mut data = Vec::new();
                t.receive(&stream[..cut], &mut data);
                for chunk in stream[cut..].chunks(size) {
                    t.receive(chunk, &mut data);
                }
                assert_eq!(data, b"a\xFFbc", "cut {cut}, chunks of {size}");
                assert_eq!(t.com_port(), ComPort::Configured);
                assert_eq!(t.confirmed().baud, Some(0x0001_FF00), "cut {cut}");
            }
        }
    }

    #[test]
    fn baud_rates_with_ff_bytes_are_escaped_in_requests() {
        let mut t = Telnet::new(PortSettings { baud: 0x0001_FFFF, ..SETTINGS });
        feed(&mut t, &[IAC, DO, 44]);
        let o = out(&mut t);
        assert_eq!(&o[3..16], &[IAC, SB, 44, 1, 0x00, 0x01, IAC, IAC, IAC, IAC, IAC, SE, IAC]);
    }

    #[test]
    fn a_reported_value_other_than_asked_is_a_mismatch() {
        let mut t = Telnet::new(SETTINGS);
        feed(&mut t, &[IAC, DO, 44]);
        let mut r = replies();
        r[6] = 0x25; // 0x2580 = 9600
        r[7] = 0x80;
        feed(&mut t, &r);
        assert_eq!(t.com_port(), ComPort::Configured);
        assert_eq!(t.confirmed().mismatches(&SETTINGS), ["baud 9600 (asked 19200)"]);
    }

    #[test]
    fn signature_requests_notifications_and_flow_control() {
        let mut t = Telnet::new(SETTINGS);
        feed(&mut t, &[IAC, DO, 44]);
        out(&mut t);
        // The server asks for our signature: IAC SB 44 100 IAC SE.
        feed(&mut t, &[IAC, SB, 44, 100, IAC, SE]);
        let mut want = vec![IAC, SB, 44, 0];
        want.extend_from_slice(SIGNATURE);
        want.extend_from_slice(&[IAC, SE]);
        assert_eq!(out(&mut t), want);
        // ser2net's modem-state notification right after DO (captured), and a line state.
        feed(&mut t, &[IAC, SB, 44, 107, 0x00, IAC, SE, IAC, SB, 44, 106, 0x04, IAC, SE]);
        assert_eq!(t.take_notices(), [Notice::ModemState(0), Notice::LineState(4)]);
        // Suspend holds device-bound data; commands still go out; resume releases it in order.
        feed(&mut t, &[IAC, SB, 44, 108, IAC, SE]);
        assert!(t.suspended());
        t.send_data(b"poll");
        assert!(out(&mut t).is_empty());
        feed(&mut t, &[IAC, SB, 44, 109, IAC, SE]);
        assert_eq!(out(&mut t), b"poll");
    }

    #[test]
    fn nvt_mode_cr_nul_and_bounded_subnegotiations() {
        // Binary refused: CR NUL is a bare CR (RFC 854, p. 11) both ways.
        let mut t = Telnet::new(SETTINGS);
        t.start();
        feed(&mut t, &[IAC, WONT, 0, IAC, DONT, 0]);
        out(&mut t);
        assert_eq!(feed(&mut t, b"A\r\0B\r\n"), b"A\rB\r\n");
        t.send_data(b"x\ry\r\n");
        assert_eq!(out(&mut t), b"x\r\0y\r\n");
        // An over-long subnegotiation is read to its end, dropped, and the stream goes on.
        let mut long = vec![IAC, SB, 44, 100];
        long.extend(core::iter::repeat_n(b'z', 5000));
        long.extend_from_slice(&[IAC, SE, b'k']);
        assert_eq!(feed(&mut t, &long), b"k");
        // IAC + a command inside SB ends it; the command is obeyed.
        assert_eq!(feed(&mut t, &[IAC, SB, 44, 101, 1, IAC, DO, 24, b'm']), b"m");
        assert_eq!(out(&mut t), [IAC, WONT, 24]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut t = Telnet::new(SETTINGS);
        t.start();
        let mut data = Vec::new();
        for _ in 0..2000 {
            let mut chunk = [0u8; 64];
            for b in &mut chunk {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Skewed toward the interesting bytes.
                *b = match seed % 8 {
                    0 => IAC,
                    1 => SB,
                    2 => SE,
                    3 => 44,
                    4 => (seed >> 8) as u8 | 0xF0,
                    _ => (seed >> 16) as u8,
                };
            }
            data.clear();
            t.receive(&chunk, &mut data);
            assert!(data.len() <= chunk.len());
            assert!(t.sb.len() <= SB_MAX);
            t.send_data(&chunk);
            assert!(t.held.len() <= HELD_MAX);
            let mut o = Vec::new();
            t.take_output(&mut o);
            t.take_notices();
        }
    }
}
