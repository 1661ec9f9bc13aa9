//! The SQL of `customer_view`: loading and saving a batch's working set
//! (the fold's side) and the reads the query side runs.

use std::sync::LazyLock;

use eventlog::StoredEvent;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::fold::State;
use super::types::{Customer, CustomerFilter, CustomerRow, CustomerSort};
use crate::db::{columns, fetch_by_key, Binds, Tx};
use crate::models::{ids_of, ordering_customers, paid_orders, After};
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
        self.orders.load(tx, g, orders).await?;
        let customers: Vec<String> = ids_of(events, "User")
            .chain(self.orders.values().map(|o| o.customer_id.clone()))
            .chain(self.payments.values().map(|p| p.customer_id.clone()))
            .chain(ordering_customers(events))
            .collect();
        self.customers.load(tx, g, customers).await
    }

    async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        self.customers.save(tx, g).await?;
        self.orders.save(tx, g).await?;
        self.payments.save(tx, g).await
    }
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
    fetch_by_key(pool, &sql, id, row).await
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
    binds.fetch(pool, &sql, row).await
}
