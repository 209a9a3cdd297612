//! Checking a configuration: the time `check-config` (and `run` before it starts) takes for
//! 10,000 and 100,000 devices. It must grow linearly: a quadratic duplicate check took 89 s for
//! 111,000 devices.
//!
//! `cargo bench -p medgw --bench config_check -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput};

/// `n` devices: serial, tcp://, rfc2217:// and listen devices (sharing 16 listen addresses with
/// disjoint allow lists), as a large site's device servers would be configured.
fn big_config(n: usize) -> String {
    let mut s = String::from(
        "[gateway]\nid = \"gw\"\nsite = \"H\"\nunit = \"U\"\n\n[mqtt]\nhost = \"127.0.0.1\"\n\n[buffer]\npath = \"buffer.db\"\n",
    );
    for i in 0..n {
        let (a, b, c) = (i >> 16 & 255, i >> 8 & 255, i & 255);
        let source = match i % 4 {
            0 => format!("protocol = \"nonin-df8\"\nport = \"/dev/serial/by-id/dev-{i}\""),
            1 => format!("protocol = \"nonin-df8\"\nport = \"tcp://10.{a}.{b}.{c}:4001\""),
            2 => format!("protocol = \"medibus\"\nport = \"rfc2217://moxa-{i}.local:4001\""),
            _ => format!("protocol = \"masimo\"\nlisten = \"0.0.0.0:{}\"\nallow = [\"10.{a}.{b}.{c}\"]", 4000 + i % 16),
        };
        s.push_str(&format!("\n[[device]]\nname = \"dev-{i}\"\n{source}\nbed = \"B{i}\"\n"));
    }
    s
}

fn main() {
    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let mut g = c.benchmark_group("config_check");
    for n in [10_000usize, 100_000] {
        let text = big_config(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}_devices"), |b| {
            b.iter(|| {
                let config = medgw::config::parse(black_box(&text), Path::new("/etc/medgw")).expect("valid");
                assert_eq!(config.devices.len(), n);
                config
            })
        });
    }
    g.finish();
    c.final_summary();
}
