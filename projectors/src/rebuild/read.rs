//! The bulk fill's reading: the log in large batches, decoded off the
//! reader's task, and the transaction the folds' loads read in.

use std::sync::Arc;
use std::time::Instant;

use eventlog::{Cursor, EventLog, StoredEvent};
use readmodel::{Projection, ProjectionError, ReadDb};
use tokio::sync::mpsc;

use super::{Options, Progress};
use crate::engine;

/// Batches decoded ahead of the folds.
pub(super) const DECODING: usize = 2;

/// Reads the log from `from` in large batches and hands each batch to
/// every fold task, until a read comes back short: the rest is the live
/// path's. The reads, the decoding of each batch (on a blocking thread)
/// and the folds overlap; batches still reach the folds in log order.
pub(super) async fn stream(
    log: &EventLog,
    from: Cursor,
    senders: &[mpsc::Sender<Arc<Vec<StoredEvent>>>],
    started: Instant,
    options: &mut Options<'_>,
) -> Result<(), eventlog::StoreError> {
    let head = log.head().await?;
    let (tx, mut decoded) = mpsc::channel(DECODING);
    let reader = tokio::spawn(read_ahead(log.clone(), from, options.read_batch, tx));
    let mut events = 0u64;
    while let Some(decoding) = decoded.recv().await {
        let batch = match decoding.await {
            Ok(batch) => batch,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                reader.abort();
                return Err(e);
            }
        };
        let Some(last) = batch.last().map(StoredEvent::cursor) else {
            continue;
        };
        events += batch.len() as u64;
        let batch = Arc::new(batch);
        for tx in senders {
            // A task that stopped (an error, a poison event) takes no more.
            let _ = tx.send(batch.clone()).await;
        }
        (options.progress)(Progress {
            events,
            position: last.position,
            head,
            elapsed: started.elapsed(),
        });
    }
    match reader.await {
        Ok(read) => read,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A batch being decoded.
type Decoding = tokio::task::JoinHandle<Result<Vec<StoredEvent>, eventlog::StoreError>>;

/// Reads batches of `limit` events from `from` until one comes back short,
/// sending each to be decoded as soon as it arrives, and reading on.
///
/// Decoding runs as a task on the runtime's workers, as the folds do, not
/// on the blocking pool: a batch decoded on one thread and freed on
/// another left that thread's allocator pages resident (measured at
/// `--rebuild-memory 64MiB`, 1.07 M events: peak RSS 111–116 MiB and
/// 400–700 spills on the blocking pool or a thread of its own, 90–101 MiB
/// and 60–180 spills on the workers, and faster at the default bound).
async fn read_ahead(
    log: EventLog,
    mut after: Cursor,
    limit: u32,
    out: mpsc::Sender<Decoding>,
) -> Result<(), eventlog::StoreError> {
    loop {
        let raw = log.read_rows_from(after, limit).await?;
        let short = raw.len() < limit as usize;
        let last = raw.last();
        if !raw.is_empty()
            && out
                .send(tokio::spawn(async move { raw.decode() }))
                .await
                .is_err()
        {
            return Ok(());
        }
        match last {
            Some(last) if !short => after = last,
            _ => return Ok(()),
        }
    }
}

/// The transaction a fold task's loads read in. PostgreSQL: one for the
/// whole fill, never committed (at read committed, every statement sees
/// what the spills committed since), instead of a begin and a rollback
/// per batch. SQLite: one per batch (a transaction there reads a single
/// snapshot).
pub(super) struct Reads {
    db: ReadDb,
    held: Option<readmodel::db::Tx<'static>>,
}

impl Reads {
    pub(super) async fn open(db: &ReadDb) -> Result<Self, ProjectionError> {
        let held = if db.is_postgres() {
            Some(db.begin().await?)
        } else {
            None
        };
        Ok(Self {
            db: db.clone(),
            held,
        })
    }

    /// [`engine::fold_with`] in the reads' transaction.
    pub(super) async fn fold<P: Projection>(
        &mut self,
        g: i64,
        events: &[&StoredEvent],
        state: &mut P::State,
    ) -> Result<Result<(), (usize, readmodel::FoldError)>, ProjectionError> {
        if let Some(tx) = &mut self.held {
            return engine::fold_with::<P>(&self.db, tx, g, events, state).await;
        }
        let mut tx = self.db.begin().await?;
        let folded = engine::fold_with::<P>(&self.db, &mut tx, g, events, state).await?;
        tx.rollback().await?;
        Ok(folded)
    }
}
