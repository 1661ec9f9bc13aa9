//! Orders: carts, placing, cancelling, payment, fulfilment.

use auth::{Principal, Role};
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::order::{CustomerFacts, OrderCommand, PaymentFacts, ProductFacts};
use domain::{Currency, Order, Sku};
use eventlog::{Guard, Source};
use uuid::Uuid;

use crate::run::{read, Attempt, Done, Mode};
use crate::{CommandContext, CommandError, Commands};

fn order_uuid(raw: &str) -> Result<String, CommandError> {
    Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| CommandError::NotFound(format!("order {raw} not found")))
}

impl Commands {
    /// Creates an empty order for a customer (the customer or an admin).
    ///
    /// # Errors
    /// [`CommandError::NotFound`] for an unknown or invisible customer; rules.
    pub async fn create_order(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        customer_id: Uuid,
        currency: Currency,
    ) -> Result<Done, CommandError> {
        who.require(&[Role::Customer, Role::Admin])?;
        let order_id = Uuid::new_v4();
        let id = order_id.to_string();
        let customer_key = customer_id.to_string();
        self.run(Order::TYPE, |source| {
            let (id, customer_key) = (&id, &customer_key);
            async move {
                let customer = read(&self.users, customer_key, source, false).await?;
                if customer.version() == 0 || !who.may_act_for(Some(customer_id), false) {
                    return Err(CommandError::NotFound(format!(
                        "customer {customer_id} not found"
                    )));
                }
                let facts = CustomerFacts {
                    id: customer_id,
                    active: customer.aggregate().active,
                };
                Attempt::new(&self.orders, id, Mode::Create, Some(who), ctx)
                    .guarded(customer.guard().into_iter().collect())
                    .decide(
                        source,
                        |_| true,
                        |_| {
                            Ok(OrderCommand::Create {
                                order_id,
                                customer: facts,
                                currency,
                                at: Utc::now(),
                            })
                        },
                    )
                    .await
            }
        })
        .await
    }

    /// Adds a catalog product to a draft order (the customer); its price and
    /// name are the catalog's now.
    ///
    /// # Errors
    /// [`CommandError::Invalid`] `unknown_product`; unknown orders; rules.
    pub async fn add_item(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        order_id: &str,
        sku: &Sku,
        quantity: u32,
    ) -> Result<Done, CommandError> {
        who.require(&[Role::Customer])?;
        self.run(Order::TYPE, |source| async move {
            let product = read(&self.products, sku.as_str(), source, false).await?;
            let (Some(name), Some(unit_price)) = (
                product.aggregate().name.clone(),
                product.aggregate().unit_price,
            ) else {
                return Err(CommandError::field(
                    "sku",
                    "unknown_product",
                    format!("no product {} in the catalog", sku.as_str()),
                ));
            };
            let facts = ProductFacts {
                sku: sku.clone(),
                name,
                unit_price,
                retired: product.aggregate().retired,
                version: product.version(),
            };
            let guards = product.guard().into_iter().collect();
            self.order_attempt(who, ctx, order_id, (source, false), guards, |_| {
                Ok(OrderCommand::AddItem {
                    product: facts,
                    quantity,
                    at: Utc::now(),
                })
            })
            .await
        })
        .await
    }

    /// Runs `command` against order `id`, visible to its customer, admins
    /// and (when `services`) services: the order commands that need no
    /// facts of other aggregates (quantity, removal, place, cancel, ship,
    /// deliver).
    ///
    /// # Errors
    /// Unknown or invisible orders; rules.
    pub async fn order_command(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        order_id: &str,
        services: bool,
        command: impl Fn() -> OrderCommand,
    ) -> Result<Done, CommandError> {
        let id = order_uuid(order_id)?;
        self.run(Order::TYPE, |source| {
            self.order_attempt(who, ctx, &id, (source, services), Vec::new(), |_| {
                Ok(command())
            })
        })
        .await
    }

    /// Marks an order paid by a captured payment of its full total (service or admin).
    ///
    /// # Errors
    /// [`CommandError::Forbidden`] for other roles; unknown ids; rules.
    pub async fn mark_paid(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        order_id: &str,
        payment_id: Uuid,
    ) -> Result<Done, CommandError> {
        who.require(&[Role::Service, Role::Admin])?;
        let payment_key = payment_id.to_string();
        self.run(Order::TYPE, |source| {
            let payment_key = &payment_key;
            async move {
                let payment = read(&self.payments, payment_key, source, false).await?;
                let p = payment.aggregate();
                let Some(paid_order) = p.order_id else {
                    return Err(CommandError::NotFound(format!(
                        "payment {payment_id} not found"
                    )));
                };
                let facts = PaymentFacts {
                    payment_id,
                    order_id: paid_order,
                    captured: p.captured(),
                    refunded_minor: p.refunded_minor,
                };
                let guards = payment.guard().into_iter().collect();
                self.order_attempt(who, ctx, order_id, (source, true), guards, |_| {
                    Ok(OrderCommand::MarkPaid {
                        payment: facts,
                        at: Utc::now(),
                    })
                })
                .await
            }
        })
        .await
    }

    /// One attempt on order `id`, visible to its customer, admins and (when
    /// `services`) services, relying on `guards`.
    async fn order_attempt(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        id: &str,
        (source, services): (Source, bool),
        guards: Vec<Guard>,
        command: impl FnOnce(&Order) -> Result<OrderCommand, CommandError>,
    ) -> Result<Done, CommandError> {
        let id = order_uuid(id)?;
        Attempt::new(&self.orders, &id, Mode::Update, Some(who), ctx)
            .guarded(guards)
            .decide(
                source,
                |order: &Order| who.may_act_for(order.customer_id, services),
                command,
            )
            .await
    }
}
