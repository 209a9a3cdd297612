//! A serial-port source (RS-232, USB serial adapters, pseudo-terminals).
//!
//! One task per device. The port is reopened with back-off when it vanishes (USB unplugged:
//! reads fail with EIO) and when the device is silent for its timeout (a wedged adapter or a
//! pulled cable often looks like silence), with a `disconnected`, `silent` or `resumed` event
//! carrying the time span of the gap. The loop itself is `connection.rs`'s, shared with the
//! network transports; this module only opens the port.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::{DataBits, Parity as SerialParity, SerialPortBuilderExt, SerialStream, StopBits};

use super::connection::{self, Conn, Opened, Step, Transport};
use super::{DeviceRunner, SourceError};
use crate::config::{Parity, SerialSettings};

/// Opens a serial port in raw mode with the device's settings.
pub fn open(path: &Path, s: &SerialSettings) -> Result<SerialStream, tokio_serial::Error> {
    let data_bits = match s.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match s.parity {
        Parity::None => SerialParity::None,
        Parity::Even => SerialParity::Even,
        Parity::Odd => SerialParity::Odd,
    };
    let stop_bits = if s.stop_bits == 2 { StopBits::Two } else { StopBits::One };
    tokio_serial::new(path.to_string_lossy(), s.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .timeout(Duration::from_millis(100))
        .open_native_async()
}

/// A local serial port as a [`Transport`] of the device loop in `connection.rs`: the same
/// reconnect, back-off, silence and event logic as a device behind a device server.
pub struct SerialPort {
    pub path: PathBuf,
    pub settings: SerialSettings,
}

impl Conn for SerialStream {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        AsyncReadExt::read(self, buf).await
    }

    async fn write_frames(&mut self, frames: Vec<Vec<u8>>) -> std::io::Result<()> {
        for f in frames {
            self.write_all(&f).await?;
        }
        self.flush().await
    }
}

impl Transport for SerialPort {
    type Conn = SerialStream;

    async fn open(&mut self) -> Step<SerialStream> {
        match open(&self.path, &self.settings) {
            Ok(port) => {
                Step::Opened(Opened { conn: port, detail: format!("{} opened at {} baud", self.path.display(), self.settings.baud) })
            }
            Err(source) => Step::Failed(SourceError::SerialOpen { path: self.path.clone(), source }),
        }
    }

    async fn notice(&mut self) -> Step<SerialStream> {
        std::future::pending().await
    }

    fn connects(&self) -> bool {
        true
    }

    fn closed(&self) -> &'static str {
        "port closed"
    }

    fn on_silence(&self) -> &'static str {
        // A wedged USB adapter often recovers when reopened; a pulled cable stays silent.
        "reopening the port"
    }
}

/// Runs the device until shutdown.
pub async fn run(runner: DeviceRunner, path: PathBuf, settings: SerialSettings) {
    connection::run(runner, SerialPort { path, settings }).await
}
