//! The SQL of `analytics`: loading and saving a batch's working set (the
//! fold's side) and the reads the query side runs. Ranges are inclusive
//! days (`YYYY-MM-DD`).

use eventlog::StoredEvent;
use sqlx::{AnyPool, Row};

use super::fold::State;
use super::types::{DailyRow, OutcomeRow, ProductRow, StageRow};
use crate::db::Tx;
use crate::models::ids_of;
use crate::ProjectionError;

pub(super) async fn load(
    tx: &mut Tx<'_>,
    g: i64,
    events: &[&StoredEvent],
    state: &mut State,
) -> Result<(), ProjectionError> {
    state.orders.load(tx, g, ids_of(events, "Order")).await
}

pub(super) async fn save(tx: &mut Tx<'_>, g: i64, s: &State) -> Result<(), ProjectionError> {
    s.orders.save(tx, g).await?;
    for counters in [&s.daily, &s.customers, &s.products, &s.payments, &s.funnel] {
        if !counters.is_empty() {
            counters.save(tx, g).await?;
        }
    }
    Ok(())
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
    let rows = sqlx::query(
        "SELECT day, revenue_minor, orders_placed, placed_value_minor FROM analytics_daily \
         WHERE day >= $1 AND day <= $2 AND currency = $3 ORDER BY day",
    )
    .bind(from)
    .bind(to)
    .bind(currency)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DailyRow {
                day: r.try_get("day")?,
                revenue_minor: r.try_get("revenue_minor")?,
                orders_placed: r.try_get("orders_placed")?,
                placed_value_minor: r.try_get("placed_value_minor")?,
            })
        })
        .collect()
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
    let rows = sqlx::query(&format!(
        "SELECT sku, MAX(name) AS name, currency, CAST(SUM(quantity) AS BIGINT) AS quantity, \
                CAST(SUM(revenue_minor) AS BIGINT) AS revenue \
         FROM analytics_products WHERE day >= $1 AND day <= $2 \
         GROUP BY sku, currency ORDER BY {order}, sku LIMIT {limit}"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ProductRow {
                sku: r.try_get("sku")?,
                name: r.try_get("name")?,
                currency: r.try_get("currency")?,
                quantity: r.try_get("quantity")?,
                revenue_minor: r.try_get("revenue")?,
            })
        })
        .collect()
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
    let rows = sqlx::query(
        "SELECT outcome, reason, CAST(SUM(count) AS BIGINT) AS n FROM analytics_payments \
         WHERE day >= $1 AND day <= $2 GROUP BY outcome, reason ORDER BY outcome, reason",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OutcomeRow {
                outcome: r.try_get("outcome")?,
                reason: r.try_get("reason")?,
                count: r.try_get("n")?,
            })
        })
        .collect()
}

/// New customers in `[from, to]`.
///
/// # Errors
/// Database errors.
pub async fn new_customers(pool: &AnyPool, from: &str, to: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(new_customers), 0) AS BIGINT) FROM analytics_customers \
         WHERE day >= $1 AND day <= $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}

/// Orders per funnel stage in `[from, to]`.
///
/// # Errors
/// Database errors.
pub async fn funnel(pool: &AnyPool, from: &str, to: &str) -> Result<Vec<StageRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT stage, CAST(SUM(count) AS BIGINT) AS n FROM analytics_funnel \
         WHERE day >= $1 AND day <= $2 GROUP BY stage",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StageRow {
                stage: r.try_get("stage")?,
                count: r.try_get("n")?,
            })
        })
        .collect()
}
