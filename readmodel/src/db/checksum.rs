//! Table checksums: what a verified rebuild compares with the live rows.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::ProjectionError;

/// Row count and a checksum over every row of one table (compared only
/// with another table's on the same database). On PostgreSQL the server
/// sums a hash of each row's text in one pass (nothing is shipped); on
/// SQLite a SHA-256 over the rows in key order, streamed.
///
/// # Errors
/// Database errors.
pub async fn table_checksum(
    pool: &AnyPool,
    table: &str,
    order_by: &str,
) -> Result<(i64, String), ProjectionError> {
    if pool
        .connect_options()
        .database_url
        .scheme()
        .starts_with("postgres")
    {
        return server_checksum(pool, table).await;
    }
    use futures::TryStreamExt;
    use sha2::{Digest, Sha256};
    let sql = format!("SELECT * FROM {table} ORDER BY {order_by}");
    // Streamed: a table of any size is hashed in constant memory.
    let mut rows = sqlx::query(&sql).fetch(pool);
    let mut hash = Sha256::new();
    let mut count = 0i64;
    while let Some(row) = rows.try_next().await? {
        let row: AnyRow = row;
        count += 1;
        for i in 0..row.len() {
            let cell = match row.try_get::<Option<String>, _>(i) {
                Ok(v) => v,
                Err(_) => row
                    .try_get::<Option<i64>, _>(i)
                    .ok()
                    .flatten()
                    .map(|n| n.to_string()),
            };
            match cell {
                Some(c) => hash.update(c.as_bytes()),
                None => hash.update(b"\x00null"),
            }
            hash.update(b"\x1f");
        }
        hash.update(b"\x1e");
    }
    let digest = hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((count, digest))
}

/// [`table_checksum`] computed by PostgreSQL: each row hashed once (64
/// bits), the hashes summed (order-free, exact in `numeric`), and the
/// count and sum hashed again; a changed row goes unnoticed with a chance
/// of 2^-64. The row's hash is `hash_record_extended` (PostgreSQL 14 on),
/// which hashes each column with its type's own hash function: rendering
/// the row as text first (`record_out`) was most of a comparison's cost,
/// about three times as long on `order_view`. Where that function is
/// missing (older servers) or a column type has no hash function, the
/// row's text is hashed instead (both sides of a comparison ask the same
/// server, so they agree on the form).
async fn server_checksum(pool: &AnyPool, table: &str) -> Result<(i64, String), ProjectionError> {
    let by_columns = format!(
        "SELECT count(*)::bigint, md5(count(*)::text || ':' || \
            coalesce(sum(hash_record_extended(t, 0)), 0)::text) FROM {table} t"
    );
    let row = match sqlx::query(&by_columns).fetch_one(pool).await {
        Ok(row) => row,
        Err(sqlx::Error::Database(e)) => {
            tracing::debug!(error = %e, table, "checksum: hashing the rows' text instead");
            let by_text = format!(
                "SELECT count(*)::bigint, md5(count(*)::text || ':' || \
                    coalesce(sum(hashtextextended(r, 0)::numeric), 0)::text) \
                 FROM (SELECT t::text AS r FROM {table} t) rows"
            );
            sqlx::query(&by_text).fetch_one(pool).await?
        }
        Err(e) => return Err(e.into()),
    };
    Ok((row.try_get(0)?, row.try_get(1)?))
}
