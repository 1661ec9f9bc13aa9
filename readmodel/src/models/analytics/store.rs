//! The SQL of `analytics`: loading and saving a batch's working set (the
//! fold's side) and the reads the query side runs. Ranges are inclusive
//! days (`YYYY-MM-DD`).

use chrono::{Datelike, NaiveDate};
use sqlx::AnyPool;

use super::fold::State;
use super::types::{DailyRow, OutcomeRow, ProductRow, StageRow};
use crate::db::{Binds, BulkTable, Tx};
use crate::models::ids_of;
use crate::{Batch, ProjectionError, WorkingSet};

impl WorkingSet for State {
    async fn load(&mut self, tx: &mut Tx<'_>, batch: Batch<'_>) -> Result<(), ProjectionError> {
        let orders = ids_of(batch.events, "Order");
        if self.rollup_of != Some(batch.g) {
            // A generation's version never changes.
            let version: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM projection_state WHERE name = 'analytics' AND generation = $1",
            )
            .bind(batch.g)
            .fetch_optional(&mut **tx)
            .await?;
            self.rollup = version.is_none_or(|v| v >= 2);
            self.rollup_of = Some(batch.g);
        }
        self.orders.load(tx, batch.g, orders).await
    }

    async fn save(&self, tx: &mut Tx<'_>, g: i64) -> Result<(), ProjectionError> {
        self.orders.save(tx, g).await?;
        let mut all = vec![
            &self.daily,
            &self.customers,
            &self.products,
            &self.payments,
            &self.funnel,
        ];
        if self.rollup {
            all.push(&self.products_monthly);
        }
        for counters in all {
            if !counters.is_empty() {
                counters.save(tx, g).await?;
            }
        }
        Ok(())
    }

    fn tables(&mut self) -> Vec<&mut dyn BulkTable> {
        let mut all: Vec<&mut dyn BulkTable> = vec![
            &mut self.orders,
            &mut self.daily,
            &mut self.customers,
            &mut self.products,
            &mut self.payments,
            &mut self.funnel,
        ];
        if self.rollup {
            all.push(&mut self.products_monthly);
        }
        all
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

/// How `[from, to]` is read: its whole months from the monthly roll-up,
/// the days at its edges (and a range within one month) from the day rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// First and last whole month (`YYYY-MM`), inclusive.
    pub months: Option<(String, String)>,
    /// Day ranges (`YYYY-MM-DD`, inclusive) outside those months.
    pub days: Vec<(String, String)>,
}

/// Splits `[from, to]` (`from` ≤ `to`) into whole months and edge days.
pub fn split(from: NaiveDate, to: NaiveDate) -> Split {
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let month = |d: NaiveDate| d.format("%Y-%m").to_string();
    let first_of_next = |d: NaiveDate| {
        let (y, m) = if d.month() == 12 {
            (d.year() + 1, 1)
        } else {
            (d.year(), d.month() + 1)
        };
        NaiveDate::from_ymd_opt(y, m, 1)
    };
    // The first day of the first whole month, and the last day of the last.
    let start = if from.day() == 1 {
        Some(from)
    } else {
        first_of_next(from)
    };
    let end = match to.succ_opt() {
        Some(next) if next.day() == 1 => Some(to),
        _ => to.with_day(1).and_then(|d| d.pred_opt()),
    };
    match (start, end) {
        (Some(start), Some(end)) if start <= end => {
            let mut days = Vec::new();
            if let Some(before) = start.pred_opt().filter(|b| from <= *b) {
                days.push((day(from), day(before)));
            }
            if let Some(after) = end.succ_opt().filter(|a| *a <= to) {
                days.push((day(after), day(to)));
            }
            Split {
                months: Some((month(start), month(end))),
                days,
            }
        }
        _ => Split {
            months: None,
            days: vec![(day(from), day(to))],
        },
    }
}

/// What a product ranking selects, summed over its rows.
const PRODUCT_SUMS: &str = "sku, MAX(name) AS name, currency, \
    CAST(SUM(quantity) AS BIGINT) AS quantity, CAST(SUM(revenue_minor) AS BIGINT) AS revenue";

fn ranking(by_revenue: bool) -> &'static str {
    if by_revenue {
        "revenue DESC, quantity DESC"
    } else {
        "quantity DESC, revenue DESC"
    }
}

/// The top `limit` products in `[from, to]`, by revenue or by quantity:
/// whole months from the monthly roll-up, edge days from the day rows.
/// (A live generation built before the roll-up existed is read by day.)
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
    let parse = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    let Some(Split {
        months: Some((first, last)),
        days,
    }) = parse(from).zip(parse(to)).map(|(f, t)| split(f, t))
    else {
        return top_products_by_day(pool, from, to, by_revenue, limit).await;
    };
    let mut binds = Binds::default();
    let mut parts = vec![format!(
        "SELECT sku, name, currency, quantity, revenue_minor FROM analytics_products_monthly \
         WHERE month >= {} AND month <= {}",
        binds.push(&first),
        binds.push(&last)
    )];
    for (a, b) in &days {
        parts.push(format!(
            "SELECT sku, name, currency, quantity, revenue_minor FROM analytics_products \
             WHERE day >= {} AND day <= {}",
            binds.push(a),
            binds.push(b)
        ));
    }
    let sql = format!(
        "SELECT {PRODUCT_SUMS} \
         FROM ({}) t GROUP BY sku, currency ORDER BY {}, sku LIMIT {limit}",
        parts.join(" UNION ALL "),
        ranking(by_revenue)
    );
    match binds.fetch(pool, &sql).await {
        Err(sqlx::Error::Database(e)) if e.message().contains("analytics_products_monthly") => {
            tracing::debug!("analytics was built before the monthly roll-up: reading by day");
            top_products_by_day(pool, from, to, by_revenue, limit).await
        }
        other => other,
    }
}

/// [`top_products`] from the day rows alone (the reference the roll-up is
/// tested against).
///
/// # Errors
/// Database errors.
pub async fn top_products_by_day(
    pool: &AnyPool,
    from: &str,
    to: &str,
    by_revenue: bool,
    limit: i64,
) -> Result<Vec<ProductRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {PRODUCT_SUMS} \
         FROM analytics_products WHERE day >= $1 AND day <= $2 \
         GROUP BY sku, currency ORDER BY {}, sku LIMIT {limit}",
        ranking(by_revenue)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every day of `[from, to]` is read exactly once: from a whole month of
    /// the split, or from one of its day ranges; nothing outside is read.
    #[test]
    fn a_split_covers_every_day_of_the_range_once() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let base = NaiveDate::from_ymd_opt(2023, 1, 1).expect("date");
        for _ in 0..5_000 {
            let from = base + chrono::Duration::days(rng.gen_range(0..1200));
            let to = from + chrono::Duration::days(rng.gen_range(0..800));
            let s = split(from, to);
            let text = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
            let mut d = from - chrono::Duration::days(40);
            while d <= to + chrono::Duration::days(40) {
                let t = text(d);
                let in_month = s
                    .months
                    .as_ref()
                    .is_some_and(|(a, b)| a.as_str() <= &t[..7] && &t[..7] <= b.as_str());
                let in_days = s.days.iter().filter(|(a, b)| a <= &t && &t <= b).count();
                let reads = usize::from(in_month) + in_days;
                let inside = from <= d && d <= to;
                assert_eq!(
                    reads,
                    usize::from(inside),
                    "{from}..{to}: {t} read {reads} times ({s:?})"
                );
                d += chrono::Duration::days(1);
            }
        }
    }

    #[test]
    fn a_year_is_twelve_months_and_a_month_is_one() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let year = split(d("2026-01-01"), d("2026-12-31"));
        assert_eq!(year.months, Some(("2026-01".into(), "2026-12".into())));
        assert!(year.days.is_empty());
        let rolling = split(d("2025-12-02"), d("2026-12-01"));
        assert_eq!(rolling.months, Some(("2026-01".into(), "2026-11".into())));
        assert_eq!(
            rolling.days,
            vec![
                ("2025-12-02".into(), "2025-12-31".into()),
                ("2026-12-01".into(), "2026-12-01".into())
            ]
        );
        let inside = split(d("2026-03-02"), d("2026-03-30"));
        assert_eq!(inside.months, None);
        assert_eq!(
            inside.days,
            vec![("2026-03-02".into(), "2026-03-30".into())]
        );
    }
}
