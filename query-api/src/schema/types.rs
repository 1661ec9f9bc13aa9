//! The GraphQL object types over the read-model rows.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, Object, Result, SimpleObject, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use readmodel::models::customer::CustomerRow;
use readmodel::models::orders::{OrderRow, OrderView};
use readmodel::models::After;

use super::{viewer, MAX_PAGE};
use crate::error::{bad_input, internal};
use crate::rows::kept;
use crate::store::Store;

/// Money: integer minor units and an ISO 4217 currency, never a float.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

/// A count per order status.
#[derive(SimpleObject, Debug, Clone)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}

/// A shipping address.
#[derive(SimpleObject, Debug, Clone)]
pub struct Address {
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

pub(crate) fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Opaque cursor: base64 of `key|id`.
pub(crate) fn encode_cursor(key: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{key}|{id}"))
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<After> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad_input("invalid cursor"))?;
    let raw = String::from_utf8(raw).map_err(|_| bad_input("invalid cursor"))?;
    let (key, id) = raw
        .rsplit_once('|')
        .ok_or_else(|| bad_input("invalid cursor"))?;
    Ok(After {
        key: key.to_string(),
        id: id.to_string(),
    })
}

/// Validates `first`: 1..=100, default 20.
pub(crate) fn page_size(first: Option<i32>) -> Result<i64> {
    match first {
        None => Ok(20),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(i64::from(n)),
        Some(n) => Err(bad_input(format!(
            "first must be between 1 and {MAX_PAGE} (got {n})"
        ))),
    }
}

/// Order statuses, as filters take them.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    Draft,
    Placed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A customer, as the customer view holds them.
pub struct Customer(pub Arc<CustomerRow>);

#[Object]
impl Customer {
    async fn id(&self) -> ID {
        ID(self.0.user_id.clone())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// `active`, `deactivated` or `forgotten`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn registered_at(&self) -> Option<DateTime<Utc>> {
        time(&self.0.registered_at)
    }
    async fn order_count(&self) -> i64 {
        self.0.order_count
    }
    async fn last_order_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_order_at.as_deref().and_then(time)
    }
    /// Orders per current status.
    async fn order_counts(&self) -> Result<Vec<StatusCount>> {
        let doc = self.0.doc.get().map_err(|e| internal(&e))?;
        Ok(doc
            .counts_by_status
            .iter()
            .map(|(status, count)| StatusCount {
                status: status.clone(),
                count: *count,
            })
            .collect())
    }
    /// Captured minus refunded, one entry per currency.
    async fn lifetime_spend(&self) -> Result<Vec<Money>> {
        let doc = self.0.doc.get().map_err(|e| internal(&e))?;
        Ok(doc
            .lifetime_spend
            .iter()
            .map(|(currency, amount)| Money {
                amount_minor: *amount,
                currency: currency.clone(),
            })
            .collect())
    }
    async fn shipping_address(&self) -> Result<Option<Address>> {
        let doc = self.0.doc.get().map_err(|e| internal(&e))?;
        Ok(doc.shipping_address.as_ref().map(|a| Address {
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        }))
    }
    /// The customer's orders, newest first (a Relay connection).
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<OrderStatus>,
    ) -> Result<Connection<String, Order>> {
        viewer(ctx)?;
        order_page(ctx, Some(&self.0.user_id), status, first, after).await
    }
}

/// One page of orders as a connection.
pub(crate) async fn order_page(
    ctx: &Context<'_>,
    customer_id: Option<&str>,
    status: Option<OrderStatus>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Connection<String, Order>> {
    let limit = page_size(first)?;
    let after = after.as_deref().map(decode_cursor).transpose()?;
    let store = ctx.data::<Store>()?;
    let status = status.map(OrderStatus::as_str);
    let key = format!(
        "orders:{customer_id:?}:{status:?}:{:?}:{limit}",
        after.as_ref().map(|a| (&a.key, &a.id))
    );
    let read = async {
        let rows = store
            .orders(customer_id, status, after.as_ref(), limit + 1)
            .await;
        rows.map(|rows| Arc::new(rows.into_iter().map(Arc::new).collect::<Vec<_>>()))
    };
    let rows = kept(ctx, key, read).await.map_err(|e| internal(&e))?;
    let has_next = rows.len() as i64 > limit;
    let mut connection = Connection::new(after.is_some(), has_next);
    connection.edges.extend(
        rows.iter()
            .take(limit as usize)
            .map(|r| Edge::new(encode_cursor(&r.created_at, &r.order_id), Order(r.clone()))),
    );
    Ok(connection)
}

/// One line of an order.
#[derive(SimpleObject, Debug, Clone)]
pub struct Item {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price: Money,
    pub line_total: Money,
}

/// A status change.
#[derive(SimpleObject, Debug, Clone)]
pub struct StatusChange {
    pub status: String,
    pub at: Option<DateTime<Utc>>,
}

/// A failed payment attempt.
#[derive(SimpleObject, Debug, Clone)]
pub struct PaymentFailure {
    pub payment_id: String,
    pub reason: String,
    pub at: Option<DateTime<Utc>>,
}

/// The payment summary of an order.
#[derive(SimpleObject, Debug, Clone)]
pub struct PaymentSummary {
    pub status: Option<String>,
    pub payment_id: Option<String>,
    pub authorized_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub failures: Vec<PaymentFailure>,
}

/// An order, as the order view holds it.
pub struct Order(pub Arc<OrderRow>);

impl Order {
    fn doc(&self) -> Result<&OrderView> {
        self.0.doc.get().map_err(|e| internal(&e))
    }
}

#[Object]
impl Order {
    async fn id(&self) -> ID {
        ID(self.0.order_id.clone())
    }
    async fn customer_id(&self) -> ID {
        ID(self.0.customer_id.clone())
    }
    /// draft, placed, paid, shipped, delivered or cancelled.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn total(&self) -> Money {
        Money {
            amount_minor: self.0.total_minor,
            currency: self.0.currency.clone(),
        }
    }
    async fn item_count(&self) -> i64 {
        self.0.item_count
    }
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        time(&self.0.created_at)
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        time(&self.0.updated_at)
    }
    async fn items(&self) -> Result<Vec<Item>> {
        let money = |amount_minor: i64| Money {
            amount_minor,
            currency: self.0.currency.clone(),
        };
        Ok(self
            .doc()?
            .items
            .iter()
            .map(|i| Item {
                sku: i.sku.clone(),
                name: i.name.clone(),
                quantity: i.quantity,
                unit_price: money(i.unit_price_minor),
                line_total: money(i.line_total_minor),
            })
            .collect())
    }
    async fn history(&self) -> Result<Vec<StatusChange>> {
        Ok(self
            .doc()?
            .history
            .iter()
            .map(|c| StatusChange {
                status: c.status.clone(),
                at: time(&c.at),
            })
            .collect())
    }
    async fn payment(&self) -> Result<PaymentSummary> {
        let p = &self.doc()?.payment;
        Ok(PaymentSummary {
            status: p.status.clone(),
            payment_id: p.payment_id.clone(),
            authorized_minor: p.authorized_minor,
            captured_minor: p.captured_minor,
            refunded_minor: p.refunded_minor,
            failures: p
                .failures
                .iter()
                .map(|f| PaymentFailure {
                    payment_id: f.payment_id.clone(),
                    reason: f.reason.clone(),
                    at: time(&f.at),
                })
                .collect(),
        })
    }
    async fn carrier(&self) -> Result<Option<String>> {
        Ok(self.doc()?.carrier.clone())
    }
    async fn tracking_number(&self) -> Result<Option<String>> {
        Ok(self.doc()?.tracking_number.clone())
    }
    async fn cancel_reason(&self) -> Result<Option<String>> {
        Ok(self.doc()?.cancel_reason.clone())
    }
}
