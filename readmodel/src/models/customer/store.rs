//! The SQL of `customer_view`: loading and saving a batch's working set
//! (the fold's side) and the reads the query side runs.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use domain::Event;
use eventlog::StoredEvent;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::fold::State;
use super::types::{Customer, CustomerFilter, CustomerRow, CustomerSort};
use crate::db::{columns, load_docs, save_docs, Binds, Tx};
use crate::models::After;
use crate::{Doc, ProjectionError};

pub(super) async fn load(
    tx: &mut Tx<'_>,
    g: i64,
    events: &[&StoredEvent],
    state: &mut State,
) -> Result<(), ProjectionError> {
    let ids = |t: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.aggregate_type == t)
            .map(|e| e.aggregate_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    state.payments = load_docs(tx, "customer_payments", "payment_id", g, &ids("Payment")).await?;
    let mut order_ids: BTreeSet<String> = ids("Order").into_iter().collect();
    order_ids.extend(state.payments.values().map(|p| p.order_id.clone()));
    for e in events {
        if let Ok(Event::Payment(PaymentEvent::Initiated { order_id, .. })) = &e.event {
            order_ids.insert(order_id.to_string());
        }
    }
    state.orders = load_docs(
        tx,
        "customer_orders",
        "order_id",
        g,
        &order_ids.into_iter().collect::<Vec<_>>(),
    )
    .await?;
    let mut customer_ids: BTreeSet<String> = ids("User").into_iter().collect();
    customer_ids.extend(state.orders.values().map(|o| o.customer_id.clone()));
    customer_ids.extend(state.payments.values().map(|p| p.customer_id.clone()));
    for e in events {
        if let Ok(Event::Order(OrderEvent::Created { customer_id, .. })) = &e.event {
            customer_ids.insert(customer_id.to_string());
        }
    }
    state.customers = load_docs(
        tx,
        "customer_view",
        "user_id",
        g,
        &customer_ids.into_iter().collect::<Vec<_>>(),
    )
    .await?;
    Ok(())
}

pub(super) async fn save(tx: &mut Tx<'_>, g: i64, s: &State) -> Result<(), ProjectionError> {
    save_docs(
        tx,
        "customer_view",
        "user_id",
        g,
        s.dirty_customers
            .iter()
            .filter_map(|k| s.customers.get_key_value(k)),
    )
    .await?;
    save_docs(
        tx,
        "customer_orders",
        "order_id",
        g,
        s.dirty_orders
            .iter()
            .filter_map(|k| s.orders.get_key_value(k)),
    )
    .await?;
    save_docs(
        tx,
        "customer_payments",
        "payment_id",
        g,
        s.dirty_payments
            .iter()
            .filter_map(|k| s.payments.get_key_value(k)),
    )
    .await?;
    Ok(())
}

/// The columns of a [`CustomerRow`], in its order.
static COLUMNS: LazyLock<String> = LazyLock::new(|| columns::<Customer>("user_id"));

fn row(row: &AnyRow) -> Result<CustomerRow, sqlx::Error> {
    Ok(CustomerRow {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        registered_at: row.try_get("registered_at")?,
        order_count: row.try_get("order_count")?,
        last_order_at: row.try_get("last_order_at")?,
        doc: Doc::new(row.try_get("doc")?),
    })
}

/// One customer of the live generation.
///
/// # Errors
/// Database errors.
pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<CustomerRow>, sqlx::Error> {
    let sql = format!("SELECT {} FROM customer_view WHERE user_id = $1", *COLUMNS);
    let found = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    found.as_ref().map(row).transpose()
}

/// A page of customers (`limit` rows at most), keyset-paged after `after`.
///
/// # Errors
/// Database errors.
pub async fn page(
    pool: &AnyPool,
    filter: &CustomerFilter,
    sort: CustomerSort,
    after: Option<&After>,
    limit: i64,
) -> Result<Vec<CustomerRow>, sqlx::Error> {
    let (key, dir, cmp) = match sort {
        CustomerSort::RegisteredNewest => ("registered_at", "DESC", "<"),
        CustomerSort::RegisteredOldest => ("registered_at", "ASC", ">"),
        CustomerSort::Email => ("email", "ASC", ">"),
    };
    let mut binds = Binds::default();
    let mut clauses = Vec::new();
    if let Some(s) = &filter.status {
        clauses.push(format!("status = {}", binds.push(s)));
    }
    if let Some(p) = &filter.email_prefix {
        // Prefix match without LIKE wildcards from the input: a range.
        let lo = binds.push(&p.to_lowercase());
        let hi = binds.push(&format!("{}\u{10FFFF}", p.to_lowercase()));
        clauses.push(format!("email >= {lo} AND email < {hi}"));
    }
    if let Some(r) = &filter.registered_after {
        clauses.push(format!("registered_at > {}", binds.push(r)));
    }
    if let Some(a) = after {
        clauses.push(a.clause(key, "user_id", cmp, &mut binds));
    }
    let sql = format!(
        "SELECT {} FROM customer_view {} ORDER BY {key} {dir}, user_id {dir} LIMIT {limit}",
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
