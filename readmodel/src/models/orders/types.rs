//! The rows and documents of `orders`: what the fold writes and the query side reads.

use serde::{Deserialize, Serialize};

use crate::db::{DocRow, SqlValue};
use crate::Doc;

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
}

/// One status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: String,
    pub at: String,
}

/// A failed payment attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub payment_id: String,
    pub reason: String,
    pub at: String,
}

/// The payment summary over all of an order's payments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentSummary {
    /// The latest payment's status.
    pub status: Option<String>,
    pub payment_id: Option<String>,
    pub authorized_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub failures: Vec<Failure>,
}

/// One order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub currency: String,
    pub total_minor: i64,
    pub item_count: i64,
    pub created_at: String,
    pub updated_at: String,
    pub items: Vec<Item>,
    pub history: Vec<StatusChange>,
    pub payment: PaymentSummary,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub cancel_reason: Option<String>,
}

impl DocRow for OrderView {
    const COLUMNS: &'static [&'static str] = &[
        "customer_id",
        "status",
        "currency",
        "total_minor",
        "item_count",
        "created_at",
        "updated_at",
    ];
    fn column_values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Text(self.customer_id.clone()),
            SqlValue::Text(self.status.clone()),
            SqlValue::Text(self.currency.clone()),
            SqlValue::Int(self.total_minor),
            SqlValue::Int(self.item_count),
            SqlValue::Text(self.created_at.clone()),
            SqlValue::Text(self.updated_at.clone()),
        ]
    }
}

/// Which order a payment pays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentOrder {
    pub order_id: String,
}

impl DocRow for PaymentOrder {
    const COLUMNS: &'static [&'static str] = &[];
    fn column_values(&self) -> Vec<SqlValue> {
        Vec::new()
    }
}

/// One `order_view` row as the query side reads it: the key, the indexed
/// columns ([`OrderView`]'s [`DocRow::COLUMNS`]) and the document, parsed on
/// first use.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub currency: String,
    pub total_minor: i64,
    pub item_count: i64,
    pub created_at: String,
    pub updated_at: String,
    pub doc: Doc<OrderView>,
}

/// How many orders are in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}
