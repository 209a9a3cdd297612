//! `medgw bench` (cargo feature `tools`): its options and the run are in [`crate::bench`].

use std::process::ExitCode;

use crate::bench::{self, BenchOptions};
use crate::config::LogFormat;
use crate::telemetry;

pub fn run(options: BenchOptions, log: LogFormat) -> anyhow::Result<ExitCode> {
    telemetry::init(log, "warn");
    let report = super::runtime()?.block_on(bench::run(options))?;
    bench::print(&report, &mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}
