//! `medgw buffer stats|export`: the on-disk buffer, read-only (safe while the gateway runs).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use medgw_protocols::Timestamp;

#[derive(Subcommand)]
pub enum BufferAction {
    /// Depth, oldest entry, bytes.
    Stats {
        /// The buffer file (buffer.path in the configuration).
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Every buffered observation as JSON lines on stdout (for recovering data by hand).
    Export { path: PathBuf },
}

pub fn run(action: BufferAction) -> anyhow::Result<ExitCode> {
    match action {
        BufferAction::Stats { path, json } => {
            let s = crate::buffer::cli::stats(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                let now = Timestamp::now();
                println!("buffer      {}", path.display());
                println!("depth       {} observations waiting for the broker", s.depth);
                match s.oldest {
                    Some(t) => println!("oldest      {} ({:.0} s ago)", t.rfc3339(), (now.0 - t.0) as f64 / 1000.0),
                    None => println!("oldest      -"),
                }
                println!(
                    "bytes       {} of {} ({:.1} %)",
                    s.bytes,
                    s.max_bytes,
                    if s.max_bytes > 0 { 100.0 * s.bytes as f64 / s.max_bytes as f64 } else { 0.0 }
                );
                println!("dropped     {} (policy drop-oldest, since the buffer was created)", s.dropped_total);
                println!("quarantined {}", s.quarantined);
                println!("dead letters {} (rejected by a sink's receiver; medgw buffer export lists them)", s.dead_lettered);
                if s.wave_segments > 0 || s.waves_dropped_total > 0 {
                    println!(
                        "waves       {} segments, {} bytes, {} dropped (durable waves, since the buffer was created)",
                        s.wave_segments, s.wave_bytes, s.waves_dropped_total
                    );
                }
                for d in &s.recent_dead_letters {
                    println!(
                        "  {} sink={} control_id={} row={} {}",
                        Timestamp(d.at_ms).rfc3339(),
                        d.sink,
                        d.control_id.as_deref().unwrap_or("-"),
                        d.entry_rowid.map_or("-".to_string(), |r| r.to_string()),
                        d.reason
                    );
                }
                for b in &s.sinks {
                    println!("sink        {}: {} observations still to deliver", b.name, b.backlog);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BufferAction::Export { path } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let n = crate::buffer::cli::export(&path, &mut out).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            out.flush()?;
            eprintln!("{n} entries exported");
            Ok(ExitCode::SUCCESS)
        }
    }
}
