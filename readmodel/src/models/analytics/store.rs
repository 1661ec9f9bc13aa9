//! The SQL of `analytics`: loading and saving a batch's working set (the
//! fold's side) and the reads the query side runs. Ranges are inclusive
//! days (`YYYY-MM-DD`).

use sqlx::AnyPool;

use super::fold::State;
use super::types::{DailyRow, OutcomeRow, ProductRow, StageRow};
use crate::db::{Binds, Tx};
use crate::models::ids_of;
use crate::{Batch, ProjectionError, WorkingSet};

impl WorkingSet for State {
    async fn load(&mut self, tx: &mut Tx<'_>, batch: Batch<'_>) -> Result<(), ProjectionError> {
        let orders = ids_of(batch.events, "Order");
        self.orders.load(tx, batch.g, orders).await
    }

    async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        self.orders.save(tx, g).await?;
        for counters in [
            &self.daily,
            &self.customers,
            &self.products,
            &self.payments,
            &self.funnel,
        ] {
            if !counters.is_empty() {
                counters.save(tx, g).await?;
            }
        }
        Ok(())
    }
}

/// `[from, to]` (and more text parameters) to bind.
fn range(from: &str, to: &str) -> Binds {
    let mut binds = Binds::default();
    binds.push(from);
    binds.push(to);
    binds
}

/// Revenue and placed orders per day in `[from, to]` for `currency`.
///
/// # Errors
/// Database errors.
pub async fn daily(
    pool: &AnyPool,
    from: &str,
    to: &str,
    currency: &str,
) -> Result<Vec<DailyRow>, sqlx::Error> {
    let mut binds = range(from, to);
    binds.push(currency);
    let sql = "SELECT day, revenue_minor, orders_placed, placed_value_minor FROM analytics_daily \
               WHERE day >= $1 AND day <= $2 AND currency = $3 ORDER BY day";
    binds.fetch(pool, sql).await
}

/// The top `limit` products in `[from, to]`, by revenue or by quantity.
///
/// # Errors
/// Database errors.
pub async fn top_products(
    pool: &AnyPool,
    from: &str,
    to: &str,
    by_revenue: bool,
    limit: i64,
) -> Result<Vec<ProductRow>, sqlx::Error> {
    let order = if by_revenue {
        "revenue DESC, quantity DESC"
    } else {
        "quantity DESC, revenue DESC"
    };
    let sql = format!(
        "SELECT sku, MAX(name) AS name, currency, CAST(SUM(quantity) AS BIGINT) AS quantity, \
                CAST(SUM(revenue_minor) AS BIGINT) AS revenue \
         FROM analytics_products WHERE day >= $1 AND day <= $2 \
         GROUP BY sku, currency ORDER BY {order}, sku LIMIT {limit}"
    );
    range(from, to).fetch(pool, &sql).await
}

/// Payment outcomes in `[from, to]`.
///
/// # Errors
/// Database errors.
pub async fn payment_outcomes(
    pool: &AnyPool,
    from: &str,
    to: &str,
) -> Result<Vec<OutcomeRow>, sqlx::Error> {
    let sql = "SELECT outcome, reason, CAST(SUM(count) AS BIGINT) AS n FROM analytics_payments \
               WHERE day >= $1 AND day <= $2 GROUP BY outcome, reason ORDER BY outcome, reason";
    range(from, to).fetch(pool, sql).await
}

/// New customers in `[from, to]`.
///
/// # Errors
/// Database errors.
pub async fn new_customers(pool: &AnyPool, from: &str, to: &str) -> Result<i64, sqlx::Error> {
    let sql =
        "SELECT CAST(COALESCE(SUM(new_customers), 0) AS BIGINT) AS n FROM analytics_customers \
               WHERE day >= $1 AND day <= $2";
    let n: Vec<(i64,)> = range(from, to).fetch(pool, sql).await?;
    Ok(n.first().map_or(0, |(n,)| *n))
}

/// The currencies analytics has seen, in code order.
///
/// # Errors
/// Database errors.
pub async fn currencies(pool: &AnyPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT currency FROM analytics_daily ORDER BY currency")
        .fetch_all(pool)
        .await
}

/// Orders per funnel stage in `[from, to]`.
///
/// # Errors
/// Database errors.
pub async fn funnel(pool: &AnyPool, from: &str, to: &str) -> Result<Vec<StageRow>, sqlx::Error> {
    let sql = "SELECT stage, CAST(SUM(count) AS BIGINT) AS n FROM analytics_funnel \
               WHERE day >= $1 AND day <= $2 GROUP BY stage";
    range(from, to).fetch(pool, sql).await
}
