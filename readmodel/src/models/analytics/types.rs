//! The rows and documents of `analytics`: what the fold writes and the query side reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::db::{DocRow, SqlValue};

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

impl DocRow for OrderMemo {
    const COLUMNS: &'static [&'static str] = &[];
    fn column_values(&self) -> Vec<SqlValue> {
        Vec::new()
    }
}

/// One day's figures in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyRow {
    pub day: String,
    /// Captured − refunded, minor units.
    pub revenue_minor: i64,
    pub orders_placed: i64,
    pub placed_value_minor: i64,
}

/// One product's sales over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRow {
    pub sku: String,
    pub name: String,
    pub currency: String,
    pub quantity: i64,
    pub revenue_minor: i64,
}

/// How many payments ended one way over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRow {
    /// `captured`, `failed`, `refunded`, …
    pub outcome: String,
    /// Why, for failures (empty otherwise).
    pub reason: String,
    pub count: i64,
}

/// How many orders reached one funnel stage over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRow {
    pub stage: String,
    pub count: i64,
}
