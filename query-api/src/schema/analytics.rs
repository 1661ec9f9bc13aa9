//! `analytics` (admin or analyst): revenue, top products, orders by status,
//! average order value, payment outcomes, new customers, the funnel.

use std::collections::BTreeMap;

use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use chrono::{Datelike, NaiveDate};

use super::types::Money;
use crate::cache::cached;
use crate::error::{bad_input, internal};
use crate::store::Store;

/// How revenue is bucketed.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Week,
    Month,
}

/// What ranks products.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProductRanking {
    Revenue,
    Quantity,
}

/// Revenue (captured − refunded) of one bucket.
#[derive(SimpleObject, Debug, Clone)]
pub struct RevenueBucket {
    /// First day of the bucket (ISO 8601 date; weeks start on Monday).
    pub bucket: NaiveDate,
    pub amount: Money,
}

/// A product's sales in a period (counted when orders are paid).
#[derive(SimpleObject, Debug, Clone)]
pub struct ProductSales {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub revenue: Money,
}

/// A count per order status.
#[derive(SimpleObject, Debug, Clone)]
pub struct OrdersByStatus {
    pub status: String,
    pub count: i64,
}

/// Failures of one reason.
#[derive(SimpleObject, Debug, Clone)]
pub struct FailureCount {
    pub reason: String,
    pub count: i64,
}

/// Payment outcomes in a period.
#[derive(SimpleObject, Debug, Clone)]
pub struct PaymentOutcomes {
    pub initiated: i64,
    pub authorized: i64,
    pub captured: i64,
    pub failed: i64,
    pub refunded: i64,
    /// captured / (captured + failed); null when neither happened.
    pub success_rate: Option<f64>,
    pub failures_by_reason: Vec<FailureCount>,
}

/// Orders reaching each stage in a period.
#[derive(SimpleObject, Debug, Clone)]
pub struct Funnel {
    pub created: i64,
    pub placed: i64,
    pub paid: i64,
    pub shipped: i64,
    pub delivered: i64,
    pub cancelled: i64,
}

/// The analytics root.
pub struct Analytics;

fn range(from: NaiveDate, to: NaiveDate) -> Result<(String, String)> {
    if from > to {
        return Err(bad_input("from must not be after to"));
    }
    Ok((
        from.format("%Y-%m-%d").to_string(),
        to.format("%Y-%m-%d").to_string(),
    ))
}

fn currency(code: &str) -> Result<String> {
    if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(code.to_string())
    } else {
        Err(bad_input(format!(
            "'{code}' is not an ISO 4217 currency code"
        )))
    }
}

fn bucket(day: NaiveDate, g: Granularity) -> NaiveDate {
    match g {
        Granularity::Day => day,
        Granularity::Week => {
            day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()))
        }
        Granularity::Month => day.with_day(1).unwrap_or(day),
    }
}

/// The days of `[from, to]` in `currency`, and the checked currency.
async fn daily(
    ctx: &Context<'_>,
    from: NaiveDate,
    to: NaiveDate,
    currency: &str,
) -> Result<(String, Vec<readmodel::models::analytics::DailyRow>)> {
    let (f, t) = range(from, to)?;
    let c = self::currency(currency)?;
    let store = ctx.data::<Store>()?;
    let key = format!("daily {f} {t} {c}");
    let rows = cached(ctx, key, store.daily(&f, &t, &c))
        .await
        .map_err(|e| internal(&e))?;
    Ok((c, rows))
}

#[Object]
impl Analytics {
    /// Revenue (captured − refunded) per bucket, in one currency.
    async fn revenue(
        &self,
        ctx: &Context<'_>,
        from: NaiveDate,
        to: NaiveDate,
        granularity: Granularity,
        currency: String,
    ) -> Result<Vec<RevenueBucket>> {
        let (c, rows) = daily(ctx, from, to, &currency).await?;
        let mut buckets: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        for row in rows {
            if let Ok(d) = NaiveDate::parse_from_str(&row.day, "%Y-%m-%d") {
                *buckets.entry(bucket(d, granularity)).or_default() += row.revenue_minor;
            }
        }
        Ok(buckets
            .into_iter()
            .map(|(b, a)| RevenueBucket {
                bucket: b,
                amount: Money {
                    amount_minor: a,
                    currency: c.clone(),
                },
            })
            .collect())
    }

    /// Best-selling products, by revenue or quantity (limit 1..=100).
    async fn top_products(
        &self,
        ctx: &Context<'_>,
        from: NaiveDate,
        to: NaiveDate,
        by: ProductRanking,
        #[graphql(default = 10)] limit: i32,
    ) -> Result<Vec<ProductSales>> {
        if !(1..=100).contains(&limit) {
            return Err(bad_input("limit must be between 1 and 100"));
        }
        let (f, t) = range(from, to)?;
        let store = ctx.data::<Store>()?;
        let by_revenue = by == ProductRanking::Revenue;
        let key = format!("top {f} {t} {by_revenue} {limit}");
        let top = store.top_products(&f, &t, by_revenue, i64::from(limit));
        let rows = cached(ctx, key, top).await.map_err(|e| internal(&e))?;
        Ok(rows
            .into_iter()
            .map(|r| ProductSales {
                sku: r.sku,
                name: r.name,
                quantity: r.quantity,
                revenue: Money {
                    amount_minor: r.revenue_minor,
                    currency: r.currency,
                },
            })
            .collect())
    }

    /// Orders per current status.
    async fn orders_by_status(&self, ctx: &Context<'_>) -> Result<Vec<OrdersByStatus>> {
        let store = ctx.data::<Store>()?;
        let rows = cached(ctx, "status".into(), store.orders_by_status())
            .await
            .map_err(|e| internal(&e))?;
        Ok(rows
            .into_iter()
            .map(|r| OrdersByStatus {
                status: r.status,
                count: r.count,
            })
            .collect())
    }

    /// Placed value / orders placed, in one currency; null without orders.
    async fn average_order_value(
        &self,
        ctx: &Context<'_>,
        from: NaiveDate,
        to: NaiveDate,
        currency: String,
    ) -> Result<Option<Money>> {
        let (c, rows) = daily(ctx, from, to, &currency).await?;
        let (placed, value) = rows.iter().fold((0i64, 0i64), |(p, v), r| {
            (p + r.orders_placed, v + r.placed_value_minor)
        });
        Ok((placed > 0).then(|| Money {
            amount_minor: value / placed,
            currency: c,
        }))
    }

    /// Payment outcomes and failures by reason.
    async fn payment_outcomes(
        &self,
        ctx: &Context<'_>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<PaymentOutcomes> {
        let (f, t) = range(from, to)?;
        let store = ctx.data::<Store>()?;
        let key = format!("payments {f} {t}");
        let rows = cached(ctx, key, store.payment_outcomes(&f, &t))
            .await
            .map_err(|e| internal(&e))?;
        let mut o = PaymentOutcomes {
            initiated: 0,
            authorized: 0,
            captured: 0,
            failed: 0,
            refunded: 0,
            success_rate: None,
            failures_by_reason: Vec::new(),
        };
        for row in rows {
            let n = row.count;
            match row.outcome.as_str() {
                "initiated" => o.initiated += n,
                "authorized" => o.authorized += n,
                "captured" => o.captured += n,
                "refunded" => o.refunded += n,
                "failed" => {
                    o.failed += n;
                    o.failures_by_reason.push(FailureCount {
                        reason: row.reason,
                        count: n,
                    });
                }
                _ => {}
            }
        }
        let decided = o.captured + o.failed;
        o.success_rate = (decided > 0).then(|| o.captured as f64 / decided as f64);
        Ok(o)
    }

    /// The currencies with revenue or orders, in code order (what a
    /// dashboard's currency selector offers).
    async fn currencies(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        let store = ctx.data::<Store>()?;
        cached(ctx, "currencies".into(), store.currencies())
            .await
            .map_err(|e| internal(&e))
    }

    /// Customers registered in the period.
    async fn new_customers(
        &self,
        ctx: &Context<'_>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<i64> {
        let (f, t) = range(from, to)?;
        let store = ctx.data::<Store>()?;
        let key = format!("customers {f} {t}");
        cached(ctx, key, store.new_customers(&f, &t))
            .await
            .map_err(|e| internal(&e))
    }

    /// Orders reaching each stage in the period.
    async fn funnel(&self, ctx: &Context<'_>, from: NaiveDate, to: NaiveDate) -> Result<Funnel> {
        let (f, t) = range(from, to)?;
        let store = ctx.data::<Store>()?;
        let key = format!("funnel {f} {t}");
        let rows = cached(ctx, key, store.funnel(&f, &t))
            .await
            .map_err(|e| internal(&e))?;
        let get = |stage: &str| {
            rows.iter()
                .find(|r| r.stage == stage)
                .map_or(0, |r| r.count)
        };
        Ok(Funnel {
            created: get("created"),
            placed: get("placed"),
            paid: get("paid"),
            shipped: get("shipped"),
            delivered: get("delivered"),
            cancelled: get("cancelled"),
        })
    }
}
