//! The SQL of `order_view`: loading and saving a batch's working set (the
//! fold's side) and the reads the query side runs.

use std::sync::LazyLock;

use eventlog::StoredEvent;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::fold::State;
use super::types::{OrderRow, OrderView, StatusCount};
use crate::db::{columns, fetch_by_key, Binds, Tx};
use crate::models::{ids_of, paid_orders, After};
use crate::{Doc, ProjectionError, WorkingSet};

impl WorkingSet for State {
    async fn load(
        &mut self,
        tx: &mut Tx<'_>,
        g: i64,
        events: &[&StoredEvent],
    ) -> Result<(), ProjectionError> {
        self.payments.load(tx, g, ids_of(events, "Payment")).await?;
        let orders: Vec<String> = ids_of(events, "Order")
            .chain(self.payments.values().map(|p| p.order_id.clone()))
            .chain(paid_orders(events))
            .collect();
        self.orders.load(tx, g, orders).await
    }

    async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        self.orders.save(tx, g).await?;
        self.payments.save(tx, g).await
    }
}

/// The columns of an [`OrderRow`], in its order.
static COLUMNS: LazyLock<String> = LazyLock::new(|| columns::<OrderView>("order_id"));

fn row(row: &AnyRow) -> Result<OrderRow, sqlx::Error> {
    Ok(OrderRow {
        order_id: row.try_get("order_id")?,
        customer_id: row.try_get("customer_id")?,
        status: row.try_get("status")?,
        currency: row.try_get("currency")?,
        total_minor: row.try_get("total_minor")?,
        item_count: row.try_get("item_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        doc: Doc::new(row.try_get("doc")?),
    })
}

/// One order of the live generation.
///
/// # Errors
/// Database errors.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
    let sql = format!("SELECT {} FROM order_view WHERE order_id = $1", *COLUMNS);
    fetch_by_key(pool, &sql, id, row).await
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
        *COLUMNS,
        Binds::filter(&clauses)
    );
    binds.fetch(pool, &sql, row).await
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
