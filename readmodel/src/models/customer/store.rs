//! The SQL of `customer_view`: loading and saving a batch's working set
//! (the fold's side) and the reads the query side runs.

use sqlx::AnyPool;

use super::fold::State;
use super::types::{CustomerFilter, CustomerRow, CustomerSort, PaymentLink};
use crate::db::{Binds, BulkTable, Tx};
use crate::models::{ids_of, load_orders, ordering_customers, After};
use crate::{Batch, ProjectionError, WorkingSet};

impl WorkingSet for State {
    async fn load(&mut self, tx: &mut Tx<'_>, batch: Batch<'_>) -> Result<(), ProjectionError> {
        let order_of = |p: &PaymentLink| p.order_id.clone();
        load_orders(tx, batch, &mut self.orders, &mut self.payments, order_of).await?;
        let Batch { g, events } = batch;
        let customers: Vec<String> = ids_of(events, "User")
            .chain(self.orders.loaded().map(|o| o.customer_id.clone()))
            .chain(self.payments.loaded().map(|p| p.customer_id.clone()))
            .chain(ordering_customers(events))
            .collect();
        self.customers.load(tx, g, customers).await
    }

    async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        self.customers.save(tx, g).await?;
        self.orders.save(tx, g).await?;
        self.payments.save(tx, g).await
    }

    fn tables(&mut self) -> Vec<&mut dyn BulkTable> {
        vec![&mut self.customers, &mut self.orders, &mut self.payments]
    }
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
        CustomerRow::columns(),
        Binds::filter(&clauses)
    );
    binds.fetch(pool, &sql).await
}
