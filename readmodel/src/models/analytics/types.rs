//! The rows and documents of `analytics`: what the fold writes and the query side reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::db::doc_row;

/// What analytics remembers of an order between its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderMemo {
    pub currency: String,
    /// SKU → (unit price, quantity).
    pub lines: BTreeMap<String, (i64, i64)>,
    /// SKU → product name as the order recorded it.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
}

doc_row! { OrderMemo in analytics_orders, key order_id }

/// One day's figures in one currency.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DailyRow {
    pub day: String,
    /// Captured − refunded, minor units.
    pub revenue_minor: i64,
    pub orders_placed: i64,
    pub placed_value_minor: i64,
}

/// One product's sales over a range.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProductRow {
    pub sku: String,
    pub name: String,
    pub currency: String,
    pub quantity: i64,
    #[sqlx(rename = "revenue")]
    pub revenue_minor: i64,
}

/// How many payments ended one way over a range.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutcomeRow {
    /// `captured`, `failed`, `refunded`, …
    pub outcome: String,
    /// Why, for failures (empty otherwise).
    pub reason: String,
    #[sqlx(rename = "n")]
    pub count: i64,
}

/// How many orders reached one funnel stage over a range.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StageRow {
    pub stage: String,
    #[sqlx(rename = "n")]
    pub count: i64,
}
