//! Raw TCP to a device server in "TCP server" mode (`port = "tcp://host:4001"`): the gateway
//! connects, and the socket carries the serial port's bytes unchanged.
//!
//! Every device socket (client or accepted) gets TCP keep-alive with short intervals and a TCP
//! user timeout, so a device server that vanished (power cut, cable pulled, switch rebooted)
//! is found within seconds even while the gateway has nothing to send; a device server that is
//! alive but sends nothing is the silence timeout's job (`connection.rs`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::connection::{Conn, Opened, Step, Transport};
use super::SourceError;

/// Keep-alive: first probe after this much idle time...
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// ...then a probe this often...
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// ...and the connection is dead after this many unanswered probes (about 11 s in all).
pub const KEEPALIVE_PROBES: u32 = 3;
/// Sent data unacknowledged this long closes the connection (Linux TCP_USER_TIMEOUT, RFC 5482):
/// keep-alive alone does not cover a peer that vanished while requests are in flight.
pub const USER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Keep-alive, user timeout and no Nagle delay (requests are small and latency-bound).
pub fn configure(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(stream);
    let ka = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE).with_interval(KEEPALIVE_INTERVAL).with_retries(KEEPALIVE_PROBES);
    sock.set_tcp_keepalive(&ka)?;
    sock.set_keepalive(true)?;
    sock.set_tcp_user_timeout(Some(USER_TIMEOUT))?;
    Ok(())
}

/// Connects to `host:port` with a timeout and configures the socket.
pub async fn connect(host: &str, port: u16) -> Result<TcpStream, SourceError> {
    let addr = || format!("{host}:{port}");
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(SourceError::connect(addr(), e)),
        Err(_) => return Err(SourceError::ConnectTimeout { addr: addr(), secs: CONNECT_TIMEOUT.as_secs() }),
    };
    configure(&stream).map_err(|e| SourceError::Configure { addr: addr(), source: e.into() })?;
    Ok(stream)
}

/// A raw TCP connection: device bytes both ways, unchanged.
pub struct RawConn {
    pub stream: TcpStream,
}

impl Conn for RawConn {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.read(buf).await
    }

    async fn write_frames(&mut self, frames: Vec<Vec<u8>>) -> std::io::Result<()> {
        for f in frames {
            self.stream.write_all(&f).await?;
        }
        Ok(())
    }
}

/// The gateway connects to the device server.
pub struct TcpClient {
    pub host: String,
    pub port: u16,
}

impl Transport for TcpClient {
    type Conn = RawConn;

    async fn open(&mut self) -> Step<RawConn> {
        match connect(&self.host, self.port).await {
            Ok(stream) => {
                let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                Step::Opened(Opened {
                    conn: RawConn { stream },
                    detail: format!("connected to tcp://{}:{} ({peer})", self.host, self.port),
                })
            }
            Err(e) => Step::Failed(e),
        }
    }

    async fn notice(&mut self) -> Step<RawConn> {
        std::future::pending().await
    }

    fn connects(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn device_sockets_detect_dead_peers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = connect("127.0.0.1", port).await.unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(sock.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);
        assert_eq!(sock.tcp_user_timeout().unwrap(), Some(USER_TIMEOUT));
        assert!(stream.nodelay().unwrap());
    }

    #[tokio::test]
    async fn a_closed_port_is_a_failure_with_the_address() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut t = TcpClient { host: "127.0.0.1".into(), port };
        match t.open().await {
            Step::Failed(e) => assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}"),
            _ => panic!("connected to a closed port"),
        }
    }
}
