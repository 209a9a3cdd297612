//! RFC 2217 device servers (`port = "rfc2217://host:4001"`): the gateway connects, negotiates
//! the COM-PORT-OPTION and sets the remote port's baud rate, data bits, parity and stop bits
//! from the device entry, as it would on a local port. The Telnet layer itself is the sans-IO
//! [`Telnet`] of `medgw_protocols::wire::telnet`; this file only moves its bytes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use medgw_protocols::wire::telnet::{self, ComPort, Notice, PortSettings, Telnet};

use super::connection::{Conn, Opened, Step, Transport};
use super::SourceError;
use crate::config::{Parity, SerialSettings};

/// How long the device server may take to agree to COM-PORT-OPTION and confirm the settings.
pub const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A Telnet connection: reads return device bytes only; negotiation answers go out as needed.
pub struct TelnetConn {
    stream: TcpStream,
    telnet: Telnet,
    raw: Vec<u8>,
    /// Device bytes decoded but not yet returned by `read`.
    pending: Vec<u8>,
    /// Bytes for the server not yet written.
    out: Vec<u8>,
    name: String,
    /// The server's line-state and flow-control notices can come with every byte: logged once
    /// a minute per kind with the count (`crate::log_limit`).
    notices: crate::log_limit::LogLimiter<&'static str>,
}

impl TelnetConn {
    /// Writes what can be written without waiting: answers produced while reading are small and
    /// a socket's send buffer is almost never full; the rest goes with the next write.
    fn flush_now(&mut self) -> std::io::Result<()> {
        self.telnet.take_output(&mut self.out);
        while !self.out.is_empty() {
            match self.stream.try_write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.telnet.take_output(&mut self.out);
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    fn log_notices(&mut self) {
        for n in self.telnet.take_notices() {
            match n {
                Notice::LineState(s) if s & 0x0E != 0 => {
                    // RFC 2217, p. 10: bit 1 overrun, bit 2 parity error, bit 3 framing error.
                    if let Some(suppressed) = self.notices.report("line-error", std::time::Instant::now()) {
                        let suppressed = (suppressed > 0).then_some(suppressed);
                        tracing::warn!(device = %self.name, line_state = s, suppressed, "device server reports a line error (overrun, parity or framing)")
                    }
                }
                Notice::HeldDropped(n) => {
                    if let Some(suppressed) = self.notices.report("held-dropped", std::time::Instant::now()) {
                        let suppressed = (suppressed > 0).then_some(suppressed);
                        tracing::warn!(device = %self.name, bytes = n, suppressed, "device server held flow control too long: requests dropped")
                    }
                }
                other => tracing::debug!(device = %self.name, notice = ?other, "telnet"),
            }
        }
    }

    /// Reads from the network until the negotiation is settled or the time is up; `url` names
    /// the device server in the error.
    async fn negotiate(&mut self, url: &str) -> Result<(), SourceError> {
        let deadline = tokio::time::Instant::now() + NEGOTIATION_TIMEOUT;
        let url = || url.to_string();
        loop {
            self.flush().await.map_err(|e| SourceError::NegotiationIo { url: url(), during: "write", source: e.into() })?;
            match self.telnet.com_port() {
                ComPort::Configured => return Ok(()),
                ComPort::Refused => return Err(SourceError::ComPortRefused { url: url() }),
                ComPort::Offered | ComPort::Configuring => {}
            }
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut self.raw)).await {
                Ok(Ok(0)) => return Err(SourceError::NegotiationClosed { url: url() }),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(SourceError::NegotiationIo { url: url(), during: "read", source: e.into() }),
                Err(_) => {
                    let stage = if self.telnet.com_port() == ComPort::Offered {
                        "no answer to WILL COM-PORT-OPTION"
                    } else {
                        "the port settings were not confirmed"
                    };
                    return Err(SourceError::NegotiationTimeout { url: url(), stage, secs: NEGOTIATION_TIMEOUT.as_secs() });
                }
            };
            let raw = std::mem::take(&mut self.raw);
            self.telnet.receive(&raw[..n], &mut self.pending);
            self.raw = raw;
            self.log_notices();
        }
    }
}

impl Conn for TelnetConn {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if !self.pending.is_empty() {
                let n = buf.len().min(self.pending.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending.drain(..n);
                return Ok(n);
            }
            self.flush_now()?;
            // Cancel-safe: nothing is held between the read and the decoding below.
            let n = self.stream.read(&mut self.raw).await?;
            if n == 0 {
                return Ok(0);
            }
            let raw = std::mem::take(&mut self.raw);
            self.telnet.receive(&raw[..n], &mut self.pending);
            self.raw = raw;
            self.log_notices();
        }
    }

    async fn write_frames(&mut self, frames: Vec<Vec<u8>>) -> std::io::Result<()> {
        for f in &frames {
            self.telnet.send_data(f);
        }
        self.flush().await
    }
}

/// The gateway connects to an RFC 2217 device server and configures its port.
pub struct Rfc2217Client {
    pub host: String,
    pub port: u16,
    pub settings: SerialSettings,
    /// The device name, for log lines.
    pub device: String,
}

/// The device entry's port settings as the Telnet layer asks for them.
fn port_settings(s: &SerialSettings) -> PortSettings {
    let parity = match s.parity {
        Parity::None => telnet::Parity::None,
        Parity::Odd => telnet::Parity::Odd,
        Parity::Even => telnet::Parity::Even,
    };
    PortSettings { baud: s.baud, data_bits: s.data_bits, parity, stop_bits: s.stop_bits }
}

/// `19200 8E1` — how the settings are shown in events.
pub fn describe(s: &SerialSettings) -> String {
    let p = match s.parity {
        Parity::None => 'N',
        Parity::Even => 'E',
        Parity::Odd => 'O',
    };
    format!("{} {}{}{}", s.baud, s.data_bits, p, s.stop_bits)
}

impl Rfc2217Client {
    /// Connects and negotiates; the connection comes back with the port configured.
    pub async fn connect(&self) -> Result<(TelnetConn, String), SourceError> {
        let stream = super::tcp::connect(&self.host, self.port).await?;
        let mut telnet = Telnet::new(port_settings(&self.settings));
        telnet.start();
        let mut conn = TelnetConn {
            stream,
            telnet,
            raw: vec![0u8; 4096],
            pending: Vec::new(),
            out: Vec::new(),
            name: self.device.clone(),
            notices: Default::default(),
        };
        conn.negotiate(&format!("rfc2217://{}:{}", self.host, self.port)).await?;
        let confirmed = conn.telnet.confirmed();
        let mismatches = confirmed.mismatches(&port_settings(&self.settings));
        let detail = if mismatches.is_empty() {
            format!("connected to rfc2217://{}:{}, port set to {}", self.host, self.port, describe(&self.settings))
        } else {
            // The server set something else: the data will likely be garbage, and the rejected
            // frames will say so; the event says why.
            tracing::warn!(device = %self.device, asked = %describe(&self.settings), got = %mismatches.join(", "), "the device server did not set the port as asked");
            format!(
                "connected to rfc2217://{}:{}, asked for {} but the device server set {}",
                self.host,
                self.port,
                describe(&self.settings),
                mismatches.join(", ")
            )
        };
        Ok((conn, detail))
    }
}

impl Transport for Rfc2217Client {
    type Conn = TelnetConn;

    async fn open(&mut self) -> Step<TelnetConn> {
        match self.connect().await {
            Ok((conn, detail)) => Step::Opened(Opened { conn, detail }),
            Err(e) => Step::Failed(e),
        }
    }

    async fn notice(&mut self) -> Step<TelnetConn> {
        std::future::pending().await
    }

    fn connects(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    //! The client against a scripted RFC 2217 server on loopback: the exact bytes on the wire.
    use medgw_protocols::wire::telnet::{DO, DONT, IAC, SB, SE, WILL, WONT};

    use super::*;

    const SETTINGS: SerialSettings = SerialSettings { baud: 38400, data_bits: 8, parity: Parity::Odd, stop_bits: 1 };

    async fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut v)).await.expect("in time").expect("read");
        v
    }

    #[tokio::test]
    async fn negotiates_sets_the_port_and_escapes_data_both_ways() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // The client's offers.
            let offers = read_exactly(&mut s, 15).await;
            assert_eq!(offers, [IAC, WILL, 0, IAC, WILL, 3, IAC, WILL, 44, IAC, DO, 0, IAC, DO, 3]);
            // Agree to everything, refuse to echo... and ask the client for TERMINAL-TYPE.
            s.write_all(&[IAC, DO, 0, IAC, WILL, 0, IAC, DO, 3, IAC, WILL, 3, IAC, DO, 24, IAC, DO, 44]).await.unwrap();
            let mut want = vec![IAC, WONT, 24];
            want.extend_from_slice(&[IAC, SB, 44, 1, 0x00, 0x00, 0x96, 0x00, IAC, SE]); // 38400 = 0x9600
            want.extend_from_slice(&[IAC, SB, 44, 2, 8, IAC, SE]);
            want.extend_from_slice(&[IAC, SB, 44, 3, 2, IAC, SE]); // odd = 2
            want.extend_from_slice(&[IAC, SB, 44, 4, 1, IAC, SE]);
            want.extend_from_slice(&[IAC, SB, 44, 5, 1, IAC, SE]);
            assert_eq!(read_exactly(&mut s, want.len()).await, want);
            // Device data before the replies, split in the middle of IAC IAC, then the replies.
            s.write_all(&[0x10, IAC]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.write_all(&[IAC, 0x20]).await.unwrap();
            s.write_all(&[IAC, SB, 44, 101, 0x00, 0x00, 0x96, 0x00, IAC, SE, IAC, SB, 44, 102, 8, IAC, SE]).await.unwrap();
            s.write_all(&[IAC, SB, 44, 103, 2, IAC, SE, IAC, SB, 44, 104, 1, IAC, SE, IAC, SB, 44, 105, 1, IAC, SE]).await.unwrap();
            s.write_all(&[0x30, IAC, IAC]).await.unwrap();
            // A request from the gateway with a 0xFF in it arrives doubled.
            assert_eq!(read_exactly(&mut s, 4).await, [0x01, IAC, IAC, 0x02]);
            s
        });
        let client = Rfc2217Client { host: "127.0.0.1".into(), port, settings: SETTINGS, device: "t".into() };
        let (mut conn, detail) = client.connect().await.unwrap();
        assert_eq!(detail, format!("connected to rfc2217://127.0.0.1:{port}, port set to 38400 8O1"));
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while got.len() < 5 {
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        // Data that came during the negotiation is kept, IAC IAC is one 0xFF even when split.
        assert_eq!(got, [0x10, 0xFF, 0x20, 0x30, 0xFF]);
        conn.write_frames(vec![vec![0x01, 0xFF, 0x02]]).await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_raw_tcp_server_is_told_apart() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(&[IAC, DONT, 44]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let client = Rfc2217Client { host: "127.0.0.1".into(), port, settings: SETTINGS, device: "t".into() };
        let e = client.connect().await.err().unwrap();
        assert!(e.to_string().contains("refused the RFC 2217 COM-PORT-OPTION"), "{e}");
    }
}
