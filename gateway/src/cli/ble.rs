//! `medgw ble scan`: the health devices in range, for configuring `ble = "..."`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use crate::config::LogFormat;
use crate::{simulate, telemetry};

#[derive(Subcommand)]
pub enum BleAction {
    /// List advertising devices: address, signal strength, name and health services.
    Scan {
        /// How long to listen for advertisements.
        #[arg(long, value_parser = simulate::parse_duration, default_value = "10s")]
        duration: Duration,
    },
}

/// Exit 3 when there is no Bluetooth to scan with (no adapter, no BlueZ, a build without `ble`).
pub fn run(action: BleAction, log: LogFormat) -> anyhow::Result<ExitCode> {
    let BleAction::Scan { duration } = action;
    telemetry::init(log, "warn");
    match super::runtime()?.block_on(crate::source::ble::scan(duration)) {
        Ok(found) => {
            crate::source::ble::print_scan(&found, &mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("medgw: cannot scan for Bluetooth devices: {e}");
            Ok(ExitCode::from(3))
        }
    }
}
