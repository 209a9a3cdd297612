//! `medgw demo` (cargo feature `tools`): one command for a newcomer, see [`crate::demo`].

use std::process::ExitCode;
use std::time::Duration;

use super::FormatArg;
use crate::config::LogFormat;
use crate::{demo, simulate, telemetry};

#[derive(clap::Args)]
pub struct DemoOptions {
    /// Stop after this long (e.g. 20s, 5m); runs until Ctrl-C without it.
    #[arg(long, value_parser = simulate::parse_duration)]
    duration: Option<Duration>,
    /// Payload format of the demo gateway.
    #[arg(long, value_enum, default_value = "fhir")]
    format: FormatArg,
    /// Port of the status page on 127.0.0.1 (default: a free port, printed).
    #[arg(long)]
    status_port: Option<u16>,
    /// How the simulated devices are attached: pseudo-terminals (the serial path) or
    /// device servers on loopback (the network path).
    #[arg(long, value_enum, default_value = "pty")]
    transport: demo::DemoTransport,
    /// Faults injected into every simulated device, as `medgw simulate --fault`: e.g.
    /// `10s:spo2-low --fault 25s:spo2-normal --fault 40s:sensor-off` to see alarms.
    #[arg(long = "fault", value_parser = simulate::parse_fault)]
    faults: Vec<simulate::ScheduledFault>,
}

pub fn run(options: DemoOptions, log: LogFormat) -> anyhow::Result<ExitCode> {
    let DemoOptions { duration, format, status_port, transport, faults } = options;
    // The embedded broker logs every client it drops; the demo shows only medgw's warnings.
    telemetry::init(log, "warn,rumqttd=off");
    super::runtime()?.block_on(demo::run(duration, format.into(), status_port, transport, faults))?;
    Ok(ExitCode::SUCCESS)
}
