//! The projection registry (`projection_state`, `projection_live`):
//! generations, checkpoints, states, and the atomic swap of a generation
//! into the read-model views.

use eventlog::Cursor;
use sqlx::Row;

use crate::db::{ReadDb, Tx};
use crate::offsets::parse_cursor;
use crate::ProjectionError;

mod checkpoint;
pub use checkpoint::{advance, advance_direct, lock_cursor, Advance};

/// One generation's row in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationState {
    pub name: String,
    pub generation: i64,
    pub version: i64,
    /// `live`, `rebuilding`, `failed` or `retired`.
    pub state: String,
    pub cursor: Cursor,
    pub events_applied: i64,
    pub last_event_at: Option<String>,
    pub error: Option<String>,
    pub error_position: Option<i64>,
}

pub(crate) fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<GenerationState, ProjectionError> {
    let txid: String = row.try_get("cursor_txid")?;
    Ok(GenerationState {
        name: row.try_get("name")?,
        generation: row.try_get("generation")?,
        version: row.try_get("version")?,
        state: row.try_get("state")?,
        cursor: parse_cursor(&txid, row.try_get("cursor_position")?)?,
        events_applied: row.try_get("events_applied")?,
        last_event_at: row.try_get("last_event_at")?,
        error: row.try_get("error")?,
        error_position: row.try_get("error_position")?,
    })
}

const COLUMNS: &str =
    "name, generation, version, state, cursor_txid, cursor_position, events_applied, \
                       last_event_at, error, error_position";

/// Every generation of `name`, newest first.
///
/// # Errors
/// Database errors.
pub async fn generations(db: &ReadDb, name: &str) -> Result<Vec<GenerationState>, ProjectionError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM projection_state WHERE name = $1 ORDER BY generation DESC"
    ))
    .bind(name)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// One generation.
///
/// # Errors
/// Database errors.
pub async fn generation(
    db: &ReadDb,
    name: &str,
    g: i64,
) -> Result<Option<GenerationState>, ProjectionError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM projection_state WHERE name = $1 AND generation = $2"
    ))
    .bind(name)
    .bind(g)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The live generation of `name`, if it has one.
///
/// # Errors
/// Database errors.
pub async fn live_generation(db: &ReadDb, name: &str) -> Result<Option<i64>, ProjectionError> {
    Ok(
        sqlx::query_scalar("SELECT generation FROM projection_live WHERE name = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await?,
    )
}

/// The names of the tables a schema template creates.
pub fn tables(schema: &str) -> Vec<String> {
    schema
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CREATE TABLE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|t| t.strip_suffix("_g{g}"))
        .map(str::to_string)
        .collect()
}

/// The secondary indexes of a schema template for generation `g`: each
/// index's name and the statement that creates it if it does not exist
/// (a bulk rebuild drops them before loading and builds them after).
pub fn indexes(schema: &str, g: i64) -> Vec<(String, String)> {
    statements(schema, g)
        .filter_map(|sql| {
            let rest = sql.trim().strip_prefix("CREATE INDEX ")?;
            let name = rest.split_whitespace().next()?.to_string();
            let create = format!("CREATE INDEX IF NOT EXISTS {rest}");
            Some((name, create))
        })
        .collect()
}

/// The statements of a schema template for generation `g`, comments left out.
fn statements(schema: &str, g: i64) -> impl Iterator<Item = String> {
    schema
        .replace("{g}", &g.to_string())
        .split(';')
        .map(|statement| {
            statement
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|sql| !sql.trim().is_empty())
        .collect::<Vec<_>>()
        .into_iter()
}

/// Creates generation `g`'s tables and registry row in `state`.
///
/// # Errors
/// Database errors.
pub async fn create_generation(
    tx: &mut Tx<'_>,
    name: &str,
    version: i64,
    schema: &str,
    g: i64,
    state: &str,
) -> Result<(), ProjectionError> {
    for sql in statements(schema, g) {
        sqlx::query(&sql).execute(&mut **tx).await?;
    }
    sqlx::query(
        "INSERT INTO projection_state (name, generation, version, state, updated_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(name)
    .bind(g)
    .bind(version)
    .bind(state)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Points the views and `projection_live` at generation `g`, retiring the
/// previous live generation; atomic with the rest of `tx`.
///
/// # Errors
/// Database errors.
pub async fn make_live(
    tx: &mut Tx<'_>,
    name: &str,
    schema: &str,
    g: i64,
) -> Result<Option<i64>, ProjectionError> {
    let previous: Option<i64> =
        sqlx::query_scalar("SELECT generation FROM projection_live WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
    for table in tables(schema) {
        sqlx::query(&format!("DROP VIEW IF EXISTS {table}"))
            .execute(&mut **tx)
            .await?;
        sqlx::query(&format!(
            "CREATE VIEW {table} AS SELECT * FROM {table}_g{g}"
        ))
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("DELETE FROM projection_live WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO projection_live (name, generation) VALUES ($1, $2)")
        .bind(name)
        .bind(g)
        .execute(&mut **tx)
        .await?;
    if let Some(old) = previous.filter(|old| *old != g) {
        sqlx::query("UPDATE projection_state SET state = 'retired', updated_at = $1 WHERE name = $2 AND generation = $3")
            .bind(now())
            .bind(name)
            .bind(old)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("UPDATE projection_state SET state = 'live', updated_at = $1 WHERE name = $2 AND generation = $3 AND state <> 'failed'")
        .bind(now())
        .bind(name)
        .bind(g)
        .execute(&mut **tx)
        .await?;
    Ok(previous)
}

/// Drops a retired generation's tables.
///
/// # Errors
/// Database errors.
pub async fn drop_generation(
    db: &ReadDb,
    name: &str,
    schema: &str,
    g: i64,
) -> Result<(), ProjectionError> {
    let mut tx = db.begin().await?;
    for table in tables(schema) {
        sqlx::query(&format!("DROP TABLE IF EXISTS {table}_g{g}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM projection_state WHERE name = $1 AND generation = $2 AND state IN ('retired', 'rebuilding')")
        .bind(name)
        .bind(g)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Records a poison event: the generation stops with the event's position
/// and the error (no silent skip).
///
/// # Errors
/// Database errors.
pub async fn fail(
    db: &ReadDb,
    name: &str,
    g: i64,
    position: i64,
    error: &str,
) -> Result<(), ProjectionError> {
    sqlx::query("UPDATE projection_state SET state = 'failed', error = $1, error_position = $2, updated_at = $3 WHERE name = $4 AND generation = $5")
        .bind(error)
        .bind(position)
        .bind(now())
        .bind(name)
        .bind(g)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A Kafka batch's bookkeeping on generation `g` inside `tx`: counts and
/// the newest event time, and the checkpoint moved up to `watermark` (never
/// back: consumers in several processes commit in any order).
///
/// # Errors
/// Database errors.
pub async fn progress(
    tx: &mut Tx<'_>,
    name: &str,
    g: i64,
    watermark: Option<Cursor>,
    applied: i64,
    last_event_at: Option<&str>,
    postgres: bool,
) -> Result<(), ProjectionError> {
    let current = locked_checkpoint(tx, name, g, postgres).await?;
    advance_kafka(tx, (name, g, current), watermark, applied, last_event_at).await
}

/// Generation `g`'s checkpoint, its row locked for the rest of `tx` on
/// Postgres (SQLite transactions here hold the write lock already).
///
/// # Errors
/// Database errors; a missing row.
pub async fn locked_checkpoint(
    tx: &mut Tx<'_>,
    name: &str,
    g: i64,
    postgres: bool,
) -> Result<Cursor, ProjectionError> {
    let lock = if postgres { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!(
        "SELECT cursor_txid, cursor_position FROM projection_state WHERE name = $1 AND generation = $2{lock}"
    ))
    .bind(name)
    .bind(g)
    .fetch_one(&mut **tx)
    .await?;
    parse_cursor(&row.try_get::<String, _>(0)?, row.try_get(1)?)
}

/// [`progress`] from a checkpoint `current` the caller read with the
/// generation's row locked (one statement fewer).
///
/// # Errors
/// Database errors.
pub async fn advance_kafka(
    tx: &mut Tx<'_>,
    (name, g, current): (&str, i64, Cursor),
    watermark: Option<Cursor>,
    applied: i64,
    last_event_at: Option<&str>,
) -> Result<(), ProjectionError> {
    let to = watermark.filter(|w| *w > current).unwrap_or(current);
    if to == current && applied == 0 {
        return Ok(());
    }
    sqlx::query(
        "UPDATE projection_state SET cursor_txid = $1, cursor_position = $2, \
         events_applied = events_applied + $3, last_event_at = COALESCE($4, last_event_at), updated_at = $5 \
         WHERE name = $6 AND generation = $7",
    )
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .bind(applied)
    .bind(last_event_at)
    .bind(now())
    .bind(name)
    .bind(g)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Locks `name`'s live row against batches and swaps for the rest of `tx`
/// (PostgreSQL; SQLite has one writer).
///
/// # Errors
/// Database errors.
pub async fn lock_live_row(
    tx: &mut Tx<'_>,
    name: &str,
    postgres: bool,
) -> Result<(), ProjectionError> {
    if postgres {
        sqlx::query("SELECT generation FROM projection_live WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
    }
    Ok(())
}
