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
