//! Network-attached serial ports: which transport a device entry gets, and the listeners the
//! TCP-server entries share. The pipeline hands every `tcp://`, `rfc2217://` and `listen`
//! device here.

use tokio::task::JoinSet;

use super::listen::Listeners;
use super::rfc2217::Rfc2217Client;
use super::tcp::TcpClient;
use super::{connection, DeviceRunner, PipelineLink, SourceError};
use crate::config::SourceConfig;

/// The network devices of a gateway while it starts.
#[derive(Default)]
pub struct Network {
    listeners: Listeners,
}

impl Network {
    /// Starts the device's task; an error if its source is not a network one.
    pub fn spawn(&mut self, tasks: &mut JoinSet<()>, runner: DeviceRunner) -> Result<(), SourceError> {
        match runner.cfg.source.clone() {
            SourceConfig::TcpClient { host, port } => {
                tasks.spawn(connection::run(runner, TcpClient { host, port }));
            }
            SourceConfig::Rfc2217 { host, port, settings } => {
                let device = runner.cfg.name.clone();
                tasks.spawn(connection::run(runner, Rfc2217Client { host, port, settings, device }));
            }
            SourceConfig::TcpServer { bind, allow } => {
                let source = self.listeners.add(bind, allow, &runner.cfg.name);
                tasks.spawn(connection::run(runner, source));
            }
            other => return Err(SourceError::NotNetwork { port: other.port_name() }),
        }
        Ok(())
    }

    /// Starts the listeners (after every device has registered on them).
    pub fn start(self, tasks: &mut JoinSet<()>, link: &PipelineLink) {
        self.listeners.spawn(tasks, link);
    }
}
