//! The reads of the query API: the read models' own queries
//! (`readmodel::models::*::store`, over the live generation's views, never
//! the event store), counted so tests can prove a page costs a fixed number
//! of statements.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use readmodel::models::analytics::{self, DailyRow, OutcomeRow, ProductRow, StageRow};
use readmodel::models::customer::{self, CustomerFilter, CustomerRow, CustomerSort};
use readmodel::models::orders::{self, OrderRow, StatusCount};
use readmodel::models::After;
use sqlx::AnyPool;

/// Read access to the views.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    statements: Arc<AtomicU64>,
}

impl Store {
    /// A store over the read-model pool.
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            statements: Arc::default(),
        }
    }

    /// SQL statements run so far (tests prove pages cost a fixed number).
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// The pool, counting the statement about to run on it.
    fn counted(&self) -> &AnyPool {
        self.statements.fetch_add(1, Ordering::Relaxed);
        &self.pool
    }

    /// The pool (consistency checks read the registry through it).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// One customer.
    ///
    /// # Errors
    /// Database errors.
    pub async fn customer(&self, id: &str) -> Result<Option<CustomerRow>, sqlx::Error> {
        customer::CustomerRow::get(self.counted(), id).await
    }

    /// A page of customers (`limit` + 1 rows, to know whether more follow).
    ///
    /// # Errors
    /// Database errors.
    pub async fn customers(
        &self,
        filter: &CustomerFilter,
        sort: CustomerSort,
        after: Option<&After>,
        limit: i64,
    ) -> Result<Vec<CustomerRow>, sqlx::Error> {
        customer::store::page(self.counted(), filter, sort, after, limit).await
    }

    /// One order.
    ///
    /// # Errors
    /// Database errors.
    pub async fn order(&self, id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
        orders::OrderRow::get(self.counted(), id).await
    }

    /// A page of orders, newest first, optionally of one customer and status
    /// (`limit` + 1 rows). One statement, items included, whatever the page size.
    ///
    /// # Errors
    /// Database errors.
    pub async fn orders(
        &self,
        customer_id: Option<&str>,
        status: Option<&str>,
        after: Option<&After>,
        limit: i64,
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        orders::store::page(self.counted(), customer_id, status, after, limit).await
    }

    /// Orders changed at or after `since` (see [`orders::store::changed_since`]).
    ///
    /// # Errors
    /// Database errors.
    pub async fn orders_changed_since(
        &self,
        customer_id: Option<&str>,
        since: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        orders::store::changed_since(self.counted(), customer_id, since, limit).await
    }

    /// Orders per current status.
    ///
    /// # Errors
    /// Database errors.
    pub async fn orders_by_status(&self) -> Result<Vec<StatusCount>, sqlx::Error> {
        orders::store::count_by_status(self.counted()).await
    }

    /// Revenue per day in `[from, to]` for `currency`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn daily(
        &self,
        from: &str,
        to: &str,
        currency: &str,
    ) -> Result<Vec<DailyRow>, sqlx::Error> {
        analytics::store::daily(self.counted(), from, to, currency).await
    }

    /// Top products in `[from, to]`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn top_products(
        &self,
        from: &str,
        to: &str,
        by_revenue: bool,
        limit: i64,
    ) -> Result<Vec<ProductRow>, sqlx::Error> {
        analytics::store::top_products(self.counted(), from, to, by_revenue, limit).await
    }

    /// Payment outcomes in `[from, to]`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn payment_outcomes(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<OutcomeRow>, sqlx::Error> {
        analytics::store::payment_outcomes(self.counted(), from, to).await
    }

    /// New customers in `[from, to]`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn new_customers(&self, from: &str, to: &str) -> Result<i64, sqlx::Error> {
        analytics::store::new_customers(self.counted(), from, to).await
    }

    /// Funnel counts per stage in `[from, to]`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn funnel(&self, from: &str, to: &str) -> Result<Vec<StageRow>, sqlx::Error> {
        analytics::store::funnel(self.counted(), from, to).await
    }

    /// The currencies analytics has seen.
    ///
    /// # Errors
    /// Database errors.
    pub async fn currencies(&self) -> Result<Vec<String>, sqlx::Error> {
        analytics::store::currencies(self.counted()).await
    }
}
