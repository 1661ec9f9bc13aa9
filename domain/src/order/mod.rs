//! The `Order` aggregate: a cart that is placed, paid, shipped and delivered,
//! or cancelled.
//!
//! Facts about other aggregates (the customer is active, a product's current
//! price, a payment's captured amount) arrive inside the command; the
//! application layer loads them, the order judges them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::domain_event;
use crate::{Carrier, Currency, EventName, Money, ProductName, Reason, Sku, TrackingNumber};

mod decide;
#[cfg(test)]
mod tests;

/// Largest quantity of one line.
pub const MAX_QUANTITY: u32 = 1000;
/// Largest number of lines in one order.
pub const MAX_LINES: usize = 100;

/// The customer an order is created for, as the application found it.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerFacts {
    pub id: Uuid,
    pub active: bool,
}

/// A catalog product at the moment an item is added.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductFacts {
    pub sku: Sku,
    pub name: ProductName,
    pub unit_price: Money,
    pub retired: bool,
    /// The product's version: which catalog entry the price is from.
    pub version: u64,
}

/// A payment offered as proof that an order is paid.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentFacts {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    /// Captured minus nothing: a payment counts only while fully captured and not refunded.
    pub captured: Option<Money>,
    pub refunded_minor: i64,
}

/// What an order can be asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderCommand {
    Create {
        order_id: Uuid,
        customer: CustomerFacts,
        currency: Currency,
        at: DateTime<Utc>,
    },
    AddItem {
        product: ProductFacts,
        quantity: u32,
        at: DateTime<Utc>,
    },
    ChangeQuantity {
        sku: Sku,
        quantity: u32,
        at: DateTime<Utc>,
    },
    RemoveItem {
        sku: Sku,
        at: DateTime<Utc>,
    },
    Place {
        at: DateTime<Utc>,
    },
    Cancel {
        reason: Reason,
        at: DateTime<Utc>,
    },
    MarkPaid {
        payment: PaymentFacts,
        at: DateTime<Utc>,
    },
    Ship {
        carrier: Carrier,
        tracking_number: TrackingNumber,
        at: DateTime<Utc>,
    },
    Deliver {
        at: DateTime<Utc>,
    },
}

/// What happened to an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderEvent {
    #[serde(rename = "OrderCreated")]
    Created {
        order_id: Uuid,
        customer_id: Uuid,
        currency: Currency,
        at: DateTime<Utc>,
    },
    /// The unit price and name are the catalog's at this moment; version 2
    /// added `catalog_version`, the product version they are from (`None`
    /// for events written before it).
    #[serde(rename = "OrderItemAdded")]
    ItemAdded {
        sku: Sku,
        name: ProductName,
        unit_price: Money,
        quantity: u32,
        at: DateTime<Utc>,
        catalog_version: Option<u64>,
    },
    #[serde(rename = "OrderItemQuantityChanged")]
    ItemQuantityChanged {
        sku: Sku,
        quantity: u32,
        at: DateTime<Utc>,
    },
    #[serde(rename = "OrderItemRemoved")]
    ItemRemoved { sku: Sku, at: DateTime<Utc> },
    #[serde(rename = "OrderPlaced")]
    Placed {
        total: Money,
        item_count: u32,
        at: DateTime<Utc>,
    },
    #[serde(rename = "OrderCancelled")]
    Cancelled { reason: Reason, at: DateTime<Utc> },
    #[serde(rename = "OrderPaid")]
    Paid {
        payment_id: Uuid,
        amount: Money,
        at: DateTime<Utc>,
    },
    #[serde(rename = "OrderShipped")]
    Shipped {
        carrier: Carrier,
        tracking_number: TrackingNumber,
        at: DateTime<Utc>,
    },
    #[serde(rename = "OrderDelivered")]
    Delivered { at: DateTime<Utc> },
}

impl EventName for OrderEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "OrderCreated",
            Self::ItemAdded { .. } => "OrderItemAdded",
            Self::ItemQuantityChanged { .. } => "OrderItemQuantityChanged",
            Self::ItemRemoved { .. } => "OrderItemRemoved",
            Self::Placed { .. } => "OrderPlaced",
            Self::Cancelled { .. } => "OrderCancelled",
            Self::Paid { .. } => "OrderPaid",
            Self::Shipped { .. } => "OrderShipped",
            Self::Delivered { .. } => "OrderDelivered",
        }
    }
}
domain_event!(OrderEvent);

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Not created yet.
    #[default]
    New,
    /// Created; items can change.
    Draft,
    Placed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Sku,
    pub name: ProductName,
    pub unit_price: Money,
    pub quantity: u32,
}

/// An order's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub currency: Option<Currency>,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub payment_id: Option<Uuid>,
}

impl Order {
    /// Whether the order has been created.
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// The sum of all line totals, `None` before creation or on overflow.
    pub fn total(&self) -> Option<Money> {
        let mut total = Money::zero(self.currency?);
        for line in &self.lines {
            total = total.checked_add(line.unit_price.checked_mul(i64::from(line.quantity))?)?;
        }
        Some(total)
    }

    /// Sum of quantities over all lines.
    pub fn item_count(&self) -> u32 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}

crate::event::aggregate!(Order, "Order", OrderCommand, OrderEvent);

impl Order {
    /// Folds one event into the state (cqrs-es's `apply`).
    fn evolve(&mut self, event: OrderEvent) {
        match event {
            OrderEvent::Created {
                order_id,
                customer_id,
                currency,
                ..
            } => {
                self.id = Some(order_id);
                self.customer_id = Some(customer_id);
                self.currency = Some(currency);
                self.status = OrderStatus::Draft;
            }
            OrderEvent::ItemAdded {
                sku,
                name,
                unit_price,
                quantity,
                ..
            } => self.lines.push(OrderLine {
                sku,
                name,
                unit_price,
                quantity,
            }),
            OrderEvent::ItemQuantityChanged { sku, quantity, .. } => {
                if let Some(line) = self.lines.iter_mut().find(|l| l.sku == sku) {
                    line.quantity = quantity;
                }
            }
            OrderEvent::ItemRemoved { sku, .. } => self.lines.retain(|l| l.sku != sku),
            OrderEvent::Placed { .. } => self.status = OrderStatus::Placed,
            OrderEvent::Cancelled { .. } => self.status = OrderStatus::Cancelled,
            OrderEvent::Paid { payment_id, .. } => {
                self.status = OrderStatus::Paid;
                self.payment_id = Some(payment_id);
            }
            OrderEvent::Shipped { .. } => self.status = OrderStatus::Shipped,
            OrderEvent::Delivered { .. } => self.status = OrderStatus::Delivered,
        }
    }
}
