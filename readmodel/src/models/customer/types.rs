//! The rows and documents of `customer`: what the fold writes and the query side reads.

use std::collections::BTreeMap;

use domain::ShippingAddress;
use serde::{Deserialize, Serialize};

use crate::db::doc_row;

/// One customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub user_id: String,
    pub email: String,
    pub name: String,
    /// `active`, `deactivated` or `forgotten`.
    pub status: String,
    pub registered_at: String,
    pub order_count: i64,
    pub last_order_at: Option<String>,
    pub counts_by_status: BTreeMap<String, i64>,
    /// Currency → captured − refunded, minor units.
    pub lifetime_spend: BTreeMap<String, i64>,
    pub shipping_address: Option<ShippingAddress>,
    /// The last event that changed this customer. A customer's events must
    /// arrive in commit order (over Kafka they share a partition); one
    /// arriving after a later one stops the projection instead of folding
    /// out of order.
    #[serde(default)]
    pub last_cursor: Option<eventlog::Cursor>,
}

doc_row! {
    Customer in customer_view, key user_id, read as CustomerRow:
    email: String, name: String, status: String, registered_at: String,
    order_count: i64, last_order_at: Option<String>,
}

/// One of a customer's orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerOrder {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub currency: String,
    pub total_minor: i64,
    pub item_count: i64,
    pub created_at: String,
    pub placed_at: Option<String>,
    pub payment_status: Option<String>,
    /// SKU → (unit price, quantity), to keep totals while a draft changes.
    pub lines: BTreeMap<String, (i64, i64)>,
}

doc_row! {
    CustomerOrder in customer_orders, key order_id,
    columns customer_id, status, currency, total_minor, item_count,
    created_at, placed_at, payment_status,
}

/// What the projection remembers of a payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentLink {
    pub order_id: String,
    pub customer_id: String,
    pub currency: String,
    pub captured_minor: i64,
    pub refunded_minor: i64,
}

doc_row! { PaymentLink in customer_payments, key payment_id }

/// How to sort customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerSort {
    RegisteredNewest,
    RegisteredOldest,
    Email,
}

/// Filters of a customer page.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    pub status: Option<String>,
    pub email_prefix: Option<String>,
    pub registered_after: Option<String>,
}
