//! The SQL of `order_view`: loading and saving a batch's working set (the
//! fold's side) and the reads the query side runs.

use sqlx::{AnyPool, Row};

use super::fold::State;
use super::types::{OrderRow, PaymentOrder, StatusCount};
use crate::db::{Binds, BulkTable, Tx};
use crate::models::{load_orders, After};
use crate::{Batch, ProjectionError, WorkingSet};

impl WorkingSet for State {
    async fn load(&mut self, tx: &mut Tx<'_>, batch: Batch<'_>) -> Result<(), ProjectionError> {
        let order_of = |p: &PaymentOrder| p.order_id.clone();
        load_orders(tx, batch, &mut self.orders, &mut self.payments, order_of).await
    }

    async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        self.orders.save(tx, g).await?;
        self.payments.save(tx, g).await
    }

    fn tables(&mut self) -> Vec<&mut dyn BulkTable> {
        vec![&mut self.orders, &mut self.payments]
    }
}

/// A page of orders, newest first, optionally of one customer and status
/// (`limit` rows at most). One statement, items included, whatever the page size.
///
/// # Errors
/// Database errors.
pub async fn page(
    pool: &AnyPool,
    customer_id: Option<&str>,
    status: Option<&str>,
    after: Option<&After>,
    limit: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    let mut binds = Binds::default();
    let mut clauses = Vec::new();
    if let Some(c) = customer_id {
        clauses.push(format!("customer_id = {}", binds.push(c)));
    }
    if let Some(s) = status {
        clauses.push(format!("status = {}", binds.push(s)));
    }
    if let Some(a) = after {
        clauses.push(a.clause("created_at", "order_id", "<", &mut binds));
    }
    let sql = format!(
        "SELECT {} FROM order_view {} ORDER BY created_at DESC, order_id DESC LIMIT {limit}",
        OrderRow::columns(),
        Binds::filter(&clauses)
    );
    binds.fetch(pool, &sql).await
}

/// Orders changed at or after `since` (all, or one customer's), oldest
/// change first, at most `limit`; with `since` = `None`, the `limit` most
/// recently changed, oldest first.
///
/// # Errors
/// Database errors.
pub async fn changed_since(
    pool: &AnyPool,
    customer_id: Option<&str>,
    since: Option<&str>,
    limit: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    let mut binds = Binds::default();
    let mut clauses = Vec::new();
    if let Some(c) = customer_id {
        clauses.push(format!("customer_id = {}", binds.push(c)));
    }
    if let Some(t) = since {
        clauses.push(format!("updated_at >= {}", binds.push(t)));
    }
    let direction = if since.is_some() { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT {} FROM order_view {} ORDER BY updated_at {direction}, order_id {direction} LIMIT {limit}",
        OrderRow::columns(),
        Binds::filter(&clauses)
    );
    let mut rows: Vec<OrderRow> = binds.fetch(pool, &sql).await?;
    if since.is_none() {
        rows.reverse();
    }
    Ok(rows)
}

/// Orders per current status.
///
/// # Errors
/// Database errors.
pub async fn count_by_status(pool: &AnyPool) -> Result<Vec<StatusCount>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT status, CAST(count(*) AS BIGINT) AS n FROM order_view GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StatusCount {
                status: r.try_get("status")?,
                count: r.try_get("n")?,
            })
        })
        .collect()
}
