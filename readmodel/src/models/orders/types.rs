//! The rows and documents of `orders`: what the fold writes and the query side reads.

use serde::{Deserialize, Serialize};

use crate::db::doc_row;

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

doc_row! {
    OrderView in order_view, key order_id, read as OrderRow:
    customer_id: String, status: String, currency: String, total_minor: i64,
    item_count: i64, created_at: String, updated_at: String,
}

/// Which order a payment pays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentOrder {
    pub order_id: String,
}

doc_row! { PaymentOrder in order_payments, key payment_id }

/// How many orders are in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}
