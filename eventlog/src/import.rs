//! The bulk path into the log: many events per statement, with recorded
//! times the caller sets (seeding a year of history in seconds). It bypasses
//! aggregates and their concurrency checks, so it is for stores nobody
//! writes to meanwhile; the events still get positions and ids like any
//! others, and tailers see them.

use chrono::{DateTime, Utc};

use crate::db::on_pool;
use crate::{Database, StoreError};

/// One event to import: its stream, sequence, stored name and version, the
/// payload as JSON text, and when it is recorded to have happened.
#[derive(Debug, Clone)]
pub struct ImportedEvent {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: &'static str,
    pub event_version: &'static str,
    pub payload: String,
    pub metadata: String,
    pub recorded_at: DateTime<Utc>,
}

/// Rows per statement (8 parameters each, under SQLite's limit).
pub const IMPORT_CHUNK: usize = 2000;

/// Appends `events` in statements of [`IMPORT_CHUNK`] rows.
///
/// # Errors
/// [`StoreError::Database`], e.g. a sequence already taken.
pub async fn import(db: &Database, events: &[ImportedEvent]) -> Result<(), StoreError> {
    // PostgreSQL needs the text parameters cast; SQLite stores text.
    let casts = db.casts(&["", "", "", "", "", "::json", "::json", "::timestamptz"]);
    for chunk in events.chunks(IMPORT_CHUNK) {
        let sql = format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata, recorded_at) VALUES {}",
            crate::values_rows(chunk.len(), &casts)
        );
        let stamp = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        on_pool!(db, |pool| {
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(e.aggregate_type)
                    .bind(&e.aggregate_id)
                    .bind(e.sequence)
                    .bind(e.event_type)
                    .bind(e.event_version)
                    .bind(&e.payload)
                    .bind(&e.metadata)
                    .bind(stamp(&e.recorded_at));
            }
            q.execute(pool).await?;
        });
    }
    Ok(())
}
