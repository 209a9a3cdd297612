//! The sink task against a real buffer and the bench's MLLP receiver on loopback.

use std::sync::Arc;
use std::time::Duration;

use medgw_protocols::mdc::{code, unit};
use medgw_protocols::nomenclature::Nomenclature;
use medgw_protocols::observation::{DeviceContext, Flags, Measurement, Observation};
use medgw_protocols::{Decimal, Timestamp};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::bench_mllp::{Received, Receiver};
use crate::buffer::live::LiveHandOver;
use crate::buffer::Entry;

fn config(dir: &std::path::Path, port: u16) -> crate::config::Config {
    let text = format!(
        "[gateway]\nid = \"gw\"\nsite = \"S\"\nunit = \"U\"\ntimezone = \"UTC\"\n\n[mqtt]\nhost = \"127.0.0.1\"\n\n[buffer]\npath = \"{}\"\n\n[[sink]]\nkind = \"mllp\"\nname = \"engine\"\nhost = \"127.0.0.1\"\nport = {port}\n",
        dir.join("buffer.db").display()
    );
    crate::config::parse(&text, dir).unwrap_or_else(|e| panic!("{e:?}"))
}

fn observation(i: i32) -> Observation {
    let ctx = Arc::new(DeviceContext { name: "oxi".into(), ..Default::default() });
    let m = Measurement::numeric(code::MDC_PULS_OXIM_SAT_O2, Decimal::from_int(90 + i), unit::MDC_DIM_PERCENT);
    Observation::new(ctx, m, Timestamp::now(), None, Flags::NONE)
}

/// The MLLP sink used to look at the buffer every 100 ms, so a reading waited up to that long
/// after its commit. Now it is woken by the live hand-over: with the only other wake-up (the
/// overflow safety net) an hour away, a row committed and handed over must still reach the
/// engine — it can only have come by the hand-over, not by a poll.
#[tokio::test]
async fn a_committed_row_is_offered_when_handed_over_not_at_a_poll() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let (tx, mut received) = mpsc::unbounded_channel::<Received>();
    let engine = Receiver::start(tx, 16, stop.clone()).await.unwrap();
    let config = config(dir.path(), engine.port);
    let crate::config::SinkConfig::Mllp(sink) = config.sinks[0].clone();
    let (buffer, _) = crate::buffer::open(&config.buffer).await.unwrap();
    buffer.set_sinks(super::sink_names(&config)).await.unwrap();
    let mut hand_over = LiveHandOver::builder();
    let _mqtt = hand_over.sink(16);
    let engine_live = hand_over.sink(16);
    let live = hand_over.build();
    let (aux, _aux_rx) = mpsc::channel(16);
    let stats = Arc::new(MllpStats::new(&sink));
    let task = tokio::spawn(run(MllpParams {
        config: sink,
        live: engine_live,
        overflow_check: Duration::from_secs(3600),
        tls: None,
        replay: config.buffer.replay,
        buffer: buffer.clone(),
        nomenclature: Arc::new(Nomenclature::builtin()),
        aux,
        events_topic: "medgw/v1/gw/events".into(),
        shutdown: stop.clone(),
        stats: stats.clone(),
    }));
    // The sink's first look at the buffer (empty) is over long before this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        let obs = observation(i);
        let id = obs.reading.id.to_string();
        let outcome = buffer.append(vec![obs.clone()]).await.unwrap();
        live.hand_over(Entry { rowid: outcome.rowids[0], observation: obs });
        let got = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .unwrap_or_else(|_| panic!("row {i} was committed and handed over but not sent within 10 s"))
            .unwrap();
        // A set of one is named by its observation's id.
        assert_eq!((got.control_id.as_str(), got.observations), (id.as_str(), 1));
    }
    // Acknowledged for this sink (the MQTT sink has not, so the rows stay).
    tokio::time::timeout(Duration::from_secs(10), async {
        while stats.acked_rows.load(Ordering::Relaxed) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the engine's ACKs recorded");
    stop.cancel();
    task.await.unwrap();
}
