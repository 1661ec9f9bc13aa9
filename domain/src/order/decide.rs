//! The order's rules: from state and command to events or a rule violation.

use super::{
    CustomerFacts, Order, OrderCommand, OrderEvent, OrderStatus, PaymentFacts, ProductFacts,
    MAX_LINES, MAX_QUANTITY,
};
use crate::{DomainError, Money};

fn check_quantity(quantity: u32) -> Result<(), DomainError> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "quantity",
            "quantity_out_of_range",
            format!("quantity must be between 1 and {MAX_QUANTITY}"),
        ))
    }
}

impl Order {
    pub(super) fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, DomainError> {
        if !self.exists() && !matches!(command, OrderCommand::Create { .. }) {
            return Err(DomainError::conflict(
                "order_not_found",
                "the order does not exist",
            ));
        }
        match command {
            OrderCommand::Create {
                order_id,
                customer,
                currency,
                at,
            } => self.create(order_id, &customer, currency, at),
            OrderCommand::AddItem {
                product,
                quantity,
                at,
            } => self.add_item(product, quantity, at),
            OrderCommand::ChangeQuantity { sku, quantity, at } => {
                self.ensure_draft()?;
                check_quantity(quantity)?;
                let line = self.line(&sku)?;
                if line.quantity == quantity {
                    return Ok(vec![]);
                }
                Ok(vec![OrderEvent::ItemQuantityChanged { sku, quantity, at }])
            }
            OrderCommand::RemoveItem { sku, at } => {
                self.ensure_draft()?;
                self.line(&sku)?;
                Ok(vec![OrderEvent::ItemRemoved { sku, at }])
            }
            OrderCommand::Place { at } => self.place(at),
            OrderCommand::Cancel { reason, at } => match self.status {
                OrderStatus::Draft | OrderStatus::Placed | OrderStatus::Paid => {
                    Ok(vec![OrderEvent::Cancelled { reason, at }])
                }
                OrderStatus::Cancelled => Err(DomainError::conflict(
                    "order_already_cancelled",
                    "the order is already cancelled",
                )),
                _ => Err(DomainError::conflict(
                    "order_already_shipped",
                    "a shipped order cannot be cancelled",
                )),
            },
            OrderCommand::MarkPaid { payment, at } => self.mark_paid(&payment, at),
            OrderCommand::Ship {
                carrier,
                tracking_number,
                at,
            } => {
                if self.status != OrderStatus::Paid {
                    return Err(DomainError::conflict(
                        "order_not_paid",
                        "only a paid order can ship",
                    ));
                }
                Ok(vec![OrderEvent::Shipped {
                    carrier,
                    tracking_number,
                    at,
                }])
            }
            OrderCommand::Deliver { at } => {
                if self.status != OrderStatus::Shipped {
                    return Err(DomainError::conflict(
                        "order_not_shipped",
                        "only a shipped order can be delivered",
                    ));
                }
                Ok(vec![OrderEvent::Delivered { at }])
            }
        }
    }

    fn create(
        &self,
        order_id: uuid::Uuid,
        customer: &CustomerFacts,
        currency: crate::Currency,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<OrderEvent>, DomainError> {
        if self.exists() {
            return Err(DomainError::conflict(
                "order_exists",
                "the order already exists",
            ));
        }
        if !customer.active {
            return Err(DomainError::invalid(
                "customer_id",
                "customer_not_active",
                "orders can only be created for an active customer",
            ));
        }
        Ok(vec![OrderEvent::Created {
            order_id,
            customer_id: customer.id,
            currency,
            at,
        }])
    }

    fn add_item(
        &self,
        product: ProductFacts,
        quantity: u32,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<OrderEvent>, DomainError> {
        self.ensure_draft()?;
        check_quantity(quantity)?;
        if product.retired {
            return Err(DomainError::invalid(
                "sku",
                "product_retired",
                "the product is retired",
            ));
        }
        if Some(product.unit_price.currency) != self.currency {
            return Err(DomainError::invalid(
                "sku",
                "currency_mismatch",
                "the product is priced in another currency than the order",
            ));
        }
        if self.lines.iter().any(|l| l.sku == product.sku) {
            return Err(DomainError::conflict(
                "item_already_in_order",
                "the item is already in the order; change its quantity instead",
            ));
        }
        if self.lines.len() >= MAX_LINES {
            return Err(DomainError::conflict(
                "too_many_items",
                format!("an order holds at most {MAX_LINES} lines"),
            ));
        }
        Ok(vec![OrderEvent::ItemAdded {
            sku: product.sku,
            name: product.name,
            unit_price: product.unit_price,
            quantity,
            at,
            catalog_version: Some(product.version),
        }])
    }

    fn place(&self, at: chrono::DateTime<chrono::Utc>) -> Result<Vec<OrderEvent>, DomainError> {
        self.ensure_draft()?;
        if self.lines.is_empty() {
            return Err(DomainError::conflict(
                "order_empty",
                "an empty order cannot be placed",
            ));
        }
        let total = self.total().ok_or_else(|| {
            DomainError::conflict("amount_out_of_range", "the order total is out of range")
        })?;
        Ok(vec![OrderEvent::Placed {
            total,
            item_count: self.item_count(),
            at,
        }])
    }

    fn mark_paid(
        &self,
        payment: &PaymentFacts,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<OrderEvent>, DomainError> {
        match self.status {
            OrderStatus::Placed => {}
            OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered => {
                return Err(DomainError::conflict(
                    "order_already_paid",
                    "the order is already paid",
                ))
            }
            _ => {
                return Err(DomainError::conflict(
                    "order_not_placed",
                    "the order is not placed",
                ))
            }
        }
        if Some(payment.order_id) != self.id {
            return Err(DomainError::invalid(
                "payment_id",
                "payment_for_other_order",
                "the payment belongs to another order",
            ));
        }
        let total = self.total();
        let captured: Option<Money> = payment.captured;
        match captured {
            None => Err(DomainError::invalid(
                "payment_id",
                "payment_not_captured",
                "the payment has not been captured",
            )),
            Some(amount) if Some(amount) != total || payment.refunded_minor != 0 => {
                Err(DomainError::invalid(
                    "payment_id",
                    "payment_amount_mismatch",
                    "the captured amount must equal the order total",
                ))
            }
            Some(amount) => Ok(vec![OrderEvent::Paid {
                payment_id: payment.payment_id,
                amount,
                at,
            }]),
        }
    }

    fn ensure_draft(&self) -> Result<(), DomainError> {
        if self.status == OrderStatus::Draft {
            Ok(())
        } else {
            Err(DomainError::conflict(
                "order_not_editable",
                "only a draft order (not yet placed) can change",
            ))
        }
    }

    fn line(&self, sku: &crate::Sku) -> Result<&super::OrderLine, DomainError> {
        self.lines.iter().find(|l| &l.sku == sku).ok_or_else(|| {
            DomainError::conflict(
                "item_not_in_order",
                format!("{} is not in the order", sku.as_str()),
            )
        })
    }
}
