//! What `medgw run` starts for `[adt]`: the association state (read from beside the buffer,
//! with the configured manual bindings), the shared snapshot the normaliser reads, and the
//! MLLP listener when `adt.listen` is set.
//!
//! A state file that exists but cannot be read, a listener that cannot bind and unusable TLS
//! files stop `medgw run`: a gateway that silently forgot its associations, or never hears of
//! a transfer, would attribute readings to the wrong patient.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use medgw_protocols::association::AuditEvent;
use medgw_protocols::observation::Patient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{listener, store, AdtSettings, Receiver, Shared};

pub struct AdtService {
    pub shared: Arc<Shared>,
    pub receiver: Arc<Mutex<Receiver>>,
    /// Where the listener accepts the feed, when `adt.listen` is set.
    pub addr: Option<SocketAddr>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl AdtService {
    /// Starts it; the audit events of every later change (and of manual conflicts found now)
    /// come out of the returned receiver.
    pub async fn start<'a>(
        settings: &AdtSettings,
        manual: impl IntoIterator<Item = (&'a str, &'a Patient)>,
    ) -> anyhow::Result<(AdtService, tokio::sync::mpsc::UnboundedReceiver<AuditEvent>)> {
        let state = match &settings.state {
            Some(path) => store::load(path, settings.beds.clone()).map_err(|e| anyhow::anyhow!("ADT association state: {e}"))?,
            None => {
                tracing::warn!("no adt.state and no buffer path: associations are kept in memory only");
                medgw_protocols::association::Associations::new(settings.beds.clone())
            }
        };
        let (shared, audit) = Shared::new(state.clone());
        let mut receiver = Receiver::new(state, settings.zone.clone(), &settings.application, &settings.facility, settings.state.clone())
            .with_processing_id(&settings.processing_id)
            .with_shared(shared.clone());
        for (bed, patient) in manual {
            receiver.set_manual(bed, patient);
        }
        let receiver = Arc::new(Mutex::new(receiver));
        let stop = CancellationToken::new();
        let (mut addr, mut task) = (None, None);
        if let Some(listen) = settings.listen {
            let tls = match &settings.tls {
                Some(t) => Some(super::tls::server_config(t).map_err(|e| anyhow::anyhow!("ADT listener TLS: {e}"))?),
                None => None,
            };
            let l = tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("ADT listener {listen}: {e}"))?;
            let bound = l.local_addr()?;
            tracing::info!(listen = %bound, tls = tls.is_some(), beds = settings.beds.mappings().len(), "ADT listener started");
            task = Some(tokio::spawn(listener::serve(l, settings.allow.clone(), tls, receiver.clone(), stop.clone())));
            addr = Some(bound);
        }
        Ok((AdtService { shared, receiver, addr, stop, task }, audit))
    }

    /// Stops accepting and closes the feed's connections (a message being applied finishes
    /// and is persisted; its ACK may not be sent, and the sender repeats it: a duplicate).
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgw_protocols::encode::mllp;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn settings(dir: &std::path::Path) -> AdtSettings {
        let mut s = AdtSettings::parse(
            "[adt]\nlisten = \"127.0.0.1:0\"\nallow = [\"127.0.0.1\"]\nzone = \"UTC\"\n[[adt.beds]]\ngateway_bed = \"BED1\"\npoint_of_care = \"ICU\"\nroom = \"01\"\nbed = \"A\"\n",
        )
        .unwrap();
        s.state = Some(dir.join("state.json"));
        s
    }

    /// A state file that cannot be read stops the start: never an empty state in its place.
    #[tokio::test]
    async fn an_unreadable_state_stops_the_start() {
        let dir = std::env::temp_dir().join(format!("medgw-adt-svc-{}-a", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state.json"), b"{broken").unwrap();
        let err = AdtService::start(&settings(&dir), std::iter::empty()).await.err().expect("refused");
        assert!(err.to_string().contains("state"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Started: the listener answers, the change reaches the snapshot and the audit channel,
    /// a manual binding on the same bed is a conflict; stopped: the port is closed.
    #[tokio::test]
    async fn starts_listens_publishes_and_stops() {
        let dir = std::env::temp_dir().join(format!("medgw-adt-svc-{}-b", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manual = Patient::configured("M1", None);
        let (svc, mut audit) = AdtService::start(&settings(&dir), [("BED1", &manual)]).await.unwrap();
        let addr = svc.addr.expect("listening");
        let before = svc.shared.version();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let a01 = b"MSH|^~\\&|PAS|H|||20260701101500+0000||ADT^A01|C1|P|2.5\rPID|||4711^^^H^MR\rPV1||I|ICU^01^A\r";
        s.write_all(&mllp::frame(a01)).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("MSA|AA|C1"));
        assert!(svc.shared.version() > before, "the snapshot was replaced");
        let kinds: Vec<&str> = std::iter::from_fn(|| audit.try_recv().ok()).map(|a| super::super::audit::kind(&a)).collect();
        assert_eq!(kinds, ["associated", "manual-conflict"]);
        assert!(dir.join("state.json").exists(), "persisted");
        svc.stop().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed after stop");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
