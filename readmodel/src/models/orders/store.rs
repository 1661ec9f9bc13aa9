//! The SQL of `order_view`: loading and saving a batch's working set (the
//! fold's side) and the reads the query side runs.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use domain::payment::PaymentEvent;
use domain::Event;
use eventlog::StoredEvent;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::fold::State;
use super::types::{OrderRow, OrderView, StatusCount};
use crate::db::{columns, load_docs, save_docs, Binds, Tx};
use crate::models::After;
use crate::{Doc, ProjectionError};

pub(super) async fn load(
    tx: &mut Tx<'_>,
    g: i64,
    events: &[&StoredEvent],
    state: &mut State,
) -> Result<(), ProjectionError> {
    let payment_ids: Vec<String> = events
        .iter()
        .filter(|e| e.aggregate_type == "Payment")
        .map(|e| e.aggregate_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    state.payments = load_docs(tx, "order_payments", "payment_id", g, &payment_ids).await?;
    let mut order_ids: BTreeSet<String> = events
        .iter()
        .filter(|e| e.aggregate_type == "Order")
        .map(|e| e.aggregate_id.clone())
        .collect();
    order_ids.extend(state.payments.values().map(|p| p.order_id.clone()));
    for e in events {
        if let Ok(Event::Payment(PaymentEvent::Initiated { order_id, .. })) = &e.event {
            order_ids.insert(order_id.to_string());
        }
    }
    state.orders = load_docs(
        tx,
        "order_view",
        "order_id",
        g,
        &order_ids.into_iter().collect::<Vec<_>>(),
    )
    .await?;
    Ok(())
}

pub(super) async fn save(tx: &mut Tx<'_>, g: i64, s: &State) -> Result<(), ProjectionError> {
    save_docs(
        tx,
        "order_view",
        "order_id",
        g,
        s.dirty_orders
            .iter()
            .filter_map(|k| s.orders.get_key_value(k)),
    )
    .await?;
    save_docs(
        tx,
        "order_payments",
        "payment_id",
        g,
        s.dirty_payments
            .iter()
            .filter_map(|k| s.payments.get_key_value(k)),
    )
    .await?;
    Ok(())
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
    let found = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    found.as_ref().map(row).transpose()
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
    binds
        .query(&sql)
        .fetch_all(pool)
        .await?
        .iter()
        .map(row)
        .collect()
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
