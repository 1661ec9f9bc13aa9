//! Table checksums: what a verified rebuild compares with the live rows.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::ProjectionError;

/// Row count and a SHA-256 over every row (in key order) of one table.
///
/// # Errors
/// Database errors.
pub async fn table_checksum(
    pool: &AnyPool,
    table: &str,
    order_by: &str,
) -> Result<(i64, String), ProjectionError> {
    use sha2::{Digest, Sha256};
    let rows: Vec<AnyRow> = sqlx::query(&format!("SELECT * FROM {table} ORDER BY {order_by}"))
        .fetch_all(pool)
        .await?;
    let mut hash = Sha256::new();
    for row in &rows {
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
    Ok((rows.len() as i64, digest))
}
