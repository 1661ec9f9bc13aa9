//! The tables beside the log that a moved store needs to carry on: the
//! idempotency keys, the e-mail and identity reservations, the users' data
//! keys (still wrapped: the target needs the same master key file), the
//! saga's payments and checkpoints.

use super::CopyError;
use crate::db::on_pool;
use crate::Database;

/// A column's kind, for moving it between backends as text.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Json,
    Time,
}

/// The side tables a store needs to carry on: (table, columns).
const SIDE_TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "idempotency_keys",
        &[
            ("principal", Kind::Text),
            ("key", Kind::Text),
            ("fingerprint", Kind::Text),
            ("state", Kind::Text),
            ("status_code", Kind::Int),
            ("response", Kind::Json),
            ("created_at", Kind::Time),
        ],
    ),
    (
        "user_emails",
        &[
            ("email", Kind::Text),
            ("user_id", Kind::Text),
            ("reserved_at", Kind::Time),
        ],
    ),
    (
        "user_identities",
        &[
            ("identity", Kind::Text),
            ("user_id", Kind::Text),
            ("reserved_at", Kind::Time),
        ],
    ),
    (
        "data_keys",
        &[
            ("subject", Kind::Text),
            ("master_key", Kind::Text),
            ("wrapped", Kind::Text),
            ("created_at", Kind::Time),
            ("forgotten_at", Kind::Time),
        ],
    ),
    (
        "saga_payments",
        &[
            ("payment_id", Kind::Text),
            ("order_id", Kind::Text),
            ("due_at", Kind::Text),
            ("state", Kind::Text),
        ],
    ),
];

/// Copies the side tables (rows the target already has are kept) and the
/// saga's checkpoints (moved onto the target's positions of the same events).
pub(super) async fn tables(
    from: &Database,
    to: &Database,
) -> Result<Vec<(&'static str, u64)>, CopyError> {
    let mut copied = Vec::new();
    for (table, columns) in SIDE_TABLES {
        let select: Vec<String> = columns
            .iter()
            .map(|(c, kind)| match (kind, from) {
                (Kind::Time, Database::Postgres(_)) => {
                    format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
                }
                _ => format!("CAST({c} AS TEXT)"),
            })
            .collect();
        let sql = format!("SELECT {} FROM {table}", select.join(", "));
        let rows: Vec<Vec<Option<String>>> = on_pool!(from, |p| {
            use sqlx::Row;
            sqlx::query(&sql)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| (0..columns.len()).map(|i| r.try_get(i)).collect())
                .collect::<Result<_, sqlx::Error>>()?
        });
        let params: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                let cast = match kind {
                    Kind::Text => "",
                    Kind::Int => to.dialect("::integer", ""),
                    Kind::Json => to.dialect("::json", ""),
                    Kind::Time => to.dialect("::timestamptz", ""),
                };
                format!("${}{cast}", i + 1)
            })
            .collect();
        let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT DO NOTHING",
            names.join(", "),
            params.join(", ")
        );
        let mut n = 0u64;
        on_pool!(to, |p| {
            let mut tx = p.begin().await?;
            if *table == "data_keys" {
                // A process started on the (empty) target made an e-mail
                // index key of its own: the source's hashes need the source's.
                sqlx::query("DELETE FROM data_keys WHERE subject = 'email-index'")
                    .execute(&mut *tx)
                    .await?;
            }
            for row in &rows {
                let mut q = sqlx::query(&insert);
                for value in row {
                    q = q.bind(value.clone());
                }
                n += q.execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
        });
        copied.push((*table, n));
    }
    copied.push(("saga_checkpoints", saga_checkpoints(from, to).await?));
    Ok(copied)
}

/// The saga's checkpoints, each moved to the target's cursor of the event
/// it names (positions differ between the stores; event ids do not).
async fn saga_checkpoints(from: &Database, to: &Database) -> Result<u64, CopyError> {
    let read = "SELECT name, CAST(cursor_position AS TEXT), updated_at FROM saga_checkpoints";
    let rows: Vec<(String, String, String)> =
        on_pool!(from, |p| sqlx::query_as(read).fetch_all(p).await?);
    let id_at = "SELECT CAST(event_id AS TEXT) FROM events WHERE position = $1";
    let cursor_of = format!(
        "SELECT CAST(transaction_id AS TEXT), position FROM events WHERE event_id = $1{}",
        to.dialect("::uuid", "")
    );
    let insert = format!(
        "INSERT INTO saga_checkpoints (name, cursor_txid, cursor_position, updated_at) \
         VALUES ($1, $2, $3{}, $4) ON CONFLICT DO NOTHING",
        to.dialect("::bigint", "")
    );
    let mut n = 0;
    for (name, position, updated_at) in rows {
        let position: i64 = position.parse().unwrap_or(0);
        let mut cursor = ("0".to_string(), 0i64);
        if position > 0 {
            let id: Option<(String,)> = on_pool!(from, |p| {
                sqlx::query_as(id_at)
                    .bind(position)
                    .fetch_optional(p)
                    .await?
            });
            if let Some((id,)) = id {
                let found: Option<(String, i64)> = on_pool!(to, |p| {
                    sqlx::query_as(&cursor_of)
                        .bind(&id)
                        .fetch_optional(p)
                        .await?
                });
                cursor = found.ok_or_else(|| {
                    CopyError::Mismatch(format!("the saga's event {id} is not in the target"))
                })?;
            }
        }
        let affected = on_pool!(to, |p| {
            sqlx::query(&insert)
                .bind(&name)
                .bind(&cursor.0)
                .bind(cursor.1)
                .bind(&updated_at)
                .execute(p)
                .await?
                .rows_affected()
        });
        n += affected;
    }
    Ok(n)
}
