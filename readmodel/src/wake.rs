//! Wake-ups: tailers wait on them for new events, readers waiting for a
//! consistency token wait on them for projection commits.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Wake-ups for tailers: bumped after every append (in-process) or on a
/// Postgres notification; tailers also poll as a safety net.
#[derive(Debug, Clone)]
pub struct Wake {
    tx: watch::Sender<u64>,
}

impl Default for Wake {
    fn default() -> Self {
        Self {
            tx: watch::channel(0).0,
        }
    }
}

impl Wake {
    /// Signals that new events may be in the store.
    pub fn notify(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver to wait on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// How many signals so far (wrapping): a change means a signal since.
    pub fn version(&self) -> u64 {
        *self.tx.borrow()
    }
}

/// Forwards Postgres notifications on `channel` (`shopstream_events` for
/// new events, `shopstream_projections` for projection commits) to `wake`
/// until the task is aborted; reconnects after failures (pollers cover gaps).
pub fn listen_postgres(url: String, channel: &'static str, wake: Wake) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if listener.listen(channel).await.is_ok() {
                        // Whatever was sent while not listening: as if signalled.
                        wake.notify();
                        // `None`: the connection was lost (notifications in
                        // the gap are lost too); the next call reconnects.
                        while listener.try_recv().await.is_ok() {
                            wake.notify();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN for new events; polling only"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}
