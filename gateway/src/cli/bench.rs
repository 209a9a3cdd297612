//! `medgw bench` (cargo feature `tools`): its options and the run are in [`crate::bench`].

use std::process::ExitCode;

use crate::bench::{self, BenchOptions};
use crate::config::LogFormat;
use crate::telemetry;

pub fn run(options: BenchOptions, log: LogFormat) -> anyhow::Result<ExitCode> {
    telemetry::init(log, "warn");
    if options.waves_child {
        super::gateway_runtime()?.block_on(crate::bench_waves::child(options))?;
        return Ok(ExitCode::SUCCESS);
    }
    if options.mllp_reference.is_some() {
        super::runtime()?.block_on(crate::bench_mllp::reference_child(options))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(file) = &options.ceiling_child {
        return super::gateway_runtime()?.block_on(bench::ceiling_child(&options, file)).map(|()| ExitCode::SUCCESS);
    }
    if options.waves {
        let report = super::runtime()?.block_on(crate::bench_waves::run(options))?;
        crate::bench_waves::print(&report, &mut std::io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = super::runtime()?.block_on(bench::run(options))?;
    bench::print(&report, &mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}
