//! `/v1/orders`: carts, placing, cancelling, payment, fulfilment.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::order::{CustomerFacts, OrderCommand, ProductFacts};
use domain::{Carrier, Currency, Order, Reason, Sku, TrackingNumber};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{accepted, valid, CommandErrors, Fields, ReasonBody};
use crate::auth::{Caller, Principal, Role};
use crate::error::ApiError;
use crate::extract::{CommandContext, JsonBody};
use crate::operations;
use crate::service::{attempt, with_retry, Accepted, Commands, Mode, Outcome, Target};

/// A new, empty order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// The customer (user id); customers may only pass their own.
    pub customer_id: String,
    /// ISO 4217 currency of every line.
    #[schema(example = "EUR")]
    pub currency: String,
}

/// A line to add; price and name come from the catalog.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    #[schema(example = "TEE-BLUE-M")]
    pub sku: String,
    /// 1..=1000.
    #[schema(example = 2)]
    #[serde(deserialize_with = "super::integral::u32")]
    pub quantity: u32,
}

/// A line's new quantity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeQuantity {
    /// 1..=1000.
    #[serde(deserialize_with = "super::integral::u32")]
    pub quantity: u32,
}

/// The payment that pays the order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkPaid {
    pub payment_id: String,
}

/// Shipment details.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ship {
    #[schema(example = "DHL")]
    pub carrier: String,
    #[schema(example = "JD014600003828")]
    pub tracking_number: String,
}

async fn run(
    commands: &Commands,
    principal: &Principal,
    id: &str,
    ctx: &CommandContext,
    services: bool,
    command: impl Fn(&Order) -> Result<OrderCommand, ApiError>,
) -> Result<(String, Outcome), ApiError> {
    operations::order_command(commands, principal, id, ctx, services, command).await
}

/// Create an order for a customer (the customer or an admin).
#[utoipa::path(post, path = "/v1/orders", tag = "orders", operation_id = "create_order", request_body = CreateOrder,
    responses((status = 201, description = "Created", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn create(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    ctx: CommandContext,
    JsonBody(body): JsonBody<CreateOrder>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Customer, Role::Admin])?;
    let mut f = Fields::default();
    let currency = f.take(Currency::parse(&body.currency));
    let customer_id = Uuid::parse_str(&body.customer_id);
    if customer_id.is_err() {
        f.take::<()>(Err(domain::ValidationError::new(
            "customer_id",
            "invalid_id",
            "must be a user id (UUID)",
        )));
    }
    f.finish()?;
    let (currency, customer_id) = (valid(currency)?, valid(customer_id.ok())?);
    let order_id = Uuid::new_v4();
    let id = order_id.to_string();
    let customer_key = customer_id.to_string();
    let outcome = with_retry(Order::TYPE, |source| {
        let (id, customer_key, principal) = (&id, &customer_key, &principal);
        let ctx = &ctx;
        let commands = &commands;
        async move {
            let customer = commands.users.read(customer_key, source, false).await?;
            if customer.version() == 0 || !principal.may_act_for(Some(customer_id), false) {
                return Err(ApiError::NotFound(format!(
                    "customer {customer_id} not found"
                )));
            }
            let facts = CustomerFacts {
                id: customer_id,
                active: customer.aggregate().active,
            };
            let target = Target {
                id,
                mode: Mode::Create,
                source,
            };
            attempt(
                &commands.orders,
                target,
                Some(principal),
                ctx,
                customer.guard().into_iter().collect(),
                |_: &Order| true,
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
    .await?;
    Ok(accepted(&id, outcome, Some(format!("/v1/orders/{id}"))))
}

/// Add a catalog product to a draft order (the customer).
#[utoipa::path(post, path = "/v1/orders/{id}/items", tag = "orders", request_body = AddItem,
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Added", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn add_item(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ctx: CommandContext,
    JsonBody(body): JsonBody<AddItem>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Customer])?;
    let sku = Sku::parse(&body.sku).map_err(|e| ApiError::Validation(vec![e.into()]))?;
    let (id, outcome) = with_retry(Order::TYPE, |source| {
        let (sku, id, principal, ctx, commands) = (&sku, &id, &principal, &ctx, &commands);
        let quantity = body.quantity;
        async move {
            let product = commands.products.read(sku.as_str(), source, false).await?;
            let (Some(name), Some(unit_price)) = (
                product.aggregate().name.clone(),
                product.aggregate().unit_price,
            ) else {
                return Err(ApiError::field(
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
            };
            let guards = product.guard().into_iter().collect();
            operations::order_attempt(
                commands,
                principal,
                id,
                ctx,
                (source, false),
                guards,
                |_| {
                    Ok(OrderCommand::AddItem {
                        product: facts,
                        quantity,
                        at: Utc::now(),
                    })
                },
            )
            .await
        }
    })
    .await?;
    Ok(accepted(&id, outcome, None))
}

/// Change a line's quantity (the customer).
#[utoipa::path(put, path = "/v1/orders/{id}/items/{sku}", tag = "orders", request_body = ChangeQuantity,
    params(("id" = String, Path, description = "Order id"), ("sku" = String, Path, description = "SKU")),
    responses((status = 200, description = "Changed", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn change_quantity(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path((id, sku)): Path<(String, String)>,
    ctx: CommandContext,
    JsonBody(body): JsonBody<ChangeQuantity>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Customer])?;
    let sku = Sku::parse(&sku).map_err(|_| ApiError::NotFound(format!("item {sku} not found")))?;
    let (id, outcome) = run(&commands, &principal, &id, &ctx, false, |_| {
        Ok(OrderCommand::ChangeQuantity {
            sku: sku.clone(),
            quantity: body.quantity,
            at: Utc::now(),
        })
    })
    .await?;
    Ok(accepted(&id, outcome, None))
}

/// Remove a line (the customer).
#[utoipa::path(delete, path = "/v1/orders/{id}/items/{sku}", tag = "orders",
    params(("id" = String, Path, description = "Order id"), ("sku" = String, Path, description = "SKU")),
    responses((status = 200, description = "Removed", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn remove_item(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path((id, sku)): Path<(String, String)>,
    ctx: CommandContext,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Customer])?;
    let sku = Sku::parse(&sku).map_err(|_| ApiError::NotFound(format!("item {sku} not found")))?;
    let (id, outcome) = run(&commands, &principal, &id, &ctx, false, |_| {
        Ok(OrderCommand::RemoveItem {
            sku: sku.clone(),
            at: Utc::now(),
        })
    })
    .await?;
    Ok(accepted(&id, outcome, None))
}

/// Place a draft order (the customer or an admin).
#[utoipa::path(post, path = "/v1/orders/{id}/place", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Placed", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn place(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ctx: CommandContext,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Customer, Role::Admin])?;
    let (id, outcome) = run(&commands, &principal, &id, &ctx, false, |_| {
        Ok(OrderCommand::Place { at: Utc::now() })
    })
    .await?;
    Ok(accepted(&id, outcome, None))
}

/// Cancel an order that has not shipped (the customer or an admin).
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", request_body = ReasonBody,
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Cancelled", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn cancel(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ctx: CommandContext,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Customer, Role::Admin])?;
    let reason =
        Reason::parse("reason", &body.reason).map_err(|e| ApiError::Validation(vec![e.into()]))?;
    let (id, outcome) = run(&commands, &principal, &id, &ctx, false, |_| {
        Ok(OrderCommand::Cancel {
            reason: reason.clone(),
            at: Utc::now(),
        })
    })
    .await?;
    Ok(accepted(&id, outcome, None))
}

/// Mark a placed order paid by a captured payment of its full total (service or admin).
#[utoipa::path(post, path = "/v1/orders/{id}/mark-paid", tag = "orders", request_body = MarkPaid,
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Paid", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn mark_paid(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ctx: CommandContext,
    JsonBody(body): JsonBody<MarkPaid>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Service, Role::Admin])?;
    let payment_id = Uuid::parse_str(&body.payment_id)
        .map_err(|_| ApiError::field("payment_id", "invalid_id", "must be a payment id (UUID)"))?;
    let (id, outcome) = operations::mark_paid(&commands, &principal, &ctx, &id, payment_id).await?;
    Ok(accepted(&id, outcome, None))
}

/// Ship a paid order (admin or service).
#[utoipa::path(post, path = "/v1/orders/{id}/ship", tag = "orders", request_body = Ship,
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Shipped", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn ship(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ctx: CommandContext,
    JsonBody(body): JsonBody<Ship>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Admin, Role::Service])?;
    let mut f = Fields::default();
    let carrier = f.take(Carrier::parse("carrier", &body.carrier));
    let tracking_number = f.take(TrackingNumber::parse(
        "tracking_number",
        &body.tracking_number,
    ));
    f.finish()?;
    let (carrier, tracking_number) = (valid(carrier)?, valid(tracking_number)?);
    let (id, outcome) = run(&commands, &principal, &id, &ctx, true, |_| {
        Ok(OrderCommand::Ship {
            carrier: carrier.clone(),
            tracking_number: tracking_number.clone(),
            at: Utc::now(),
        })
    })
    .await?;
    Ok(accepted(&id, outcome, None))
}

/// Confirm delivery of a shipped order (admin or service).
#[utoipa::path(post, path = "/v1/orders/{id}/deliver", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Delivered", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn deliver(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ctx: CommandContext,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Admin, Role::Service])?;
    let (id, outcome) = run(&commands, &principal, &id, &ctx, true, |_| {
        Ok(OrderCommand::Deliver { at: Utc::now() })
    })
    .await?;
    Ok(accepted(&id, outcome, None))
}
