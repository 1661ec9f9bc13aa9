//! `/v1/orders`: carts, placing, cancelling, payment, fulfilment.

use axum::extract::Path;
use axum::response::Response;
use chrono::Utc;
use domain::order::OrderCommand;
use domain::{Carrier, Currency, Reason, Sku, TrackingNumber};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{accepted, valid, Accepted, CommandErrors, Fields, ReasonBody};
use crate::auth::Role;
use crate::error::ApiError;
use crate::extract::{Invocation, JsonBody};

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

impl Invocation {
    /// A command on order `id` (`services`: whether services may issue it).
    async fn order(
        &self,
        id: &str,
        services: bool,
        command: impl Fn() -> OrderCommand,
    ) -> Result<Response, ApiError> {
        let done = (self.commands)
            .order_command(&self.principal, &self.ctx, id, services, command)
            .await?;
        Ok(accepted(done, None))
    }
}

/// Create an order for a customer (the customer or an admin).
#[utoipa::path(post, path = "/v1/orders", tag = "orders", operation_id = "create_order", request_body = CreateOrder,
    responses((status = 201, description = "Created", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn create(
    call: Invocation,
    JsonBody(body): JsonBody<CreateOrder>,
) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Customer, Role::Admin])?;
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
    let done = call
        .commands
        .create_order(&call.principal, &call.ctx, customer_id, currency)
        .await?;
    Ok(accepted(done, Some("/v1/orders")))
}

/// Add a catalog product to a draft order (the customer).
#[utoipa::path(post, path = "/v1/orders/{id}/items", tag = "orders", request_body = AddItem,
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Added", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn add_item(
    call: Invocation,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AddItem>,
) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Customer])?;
    let sku = Sku::parse(&body.sku).map_err(|e| ApiError::Validation(vec![e.into()]))?;
    let done = call
        .commands
        .add_item(&call.principal, &call.ctx, &id, &sku, body.quantity)
        .await?;
    Ok(accepted(done, None))
}

/// Change a line's quantity (the customer).
#[utoipa::path(put, path = "/v1/orders/{id}/items/{sku}", tag = "orders", request_body = ChangeQuantity,
    params(("id" = String, Path, description = "Order id"), ("sku" = String, Path, description = "SKU")),
    responses((status = 200, description = "Changed", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn change_quantity(
    call: Invocation,
    Path((id, sku)): Path<(String, String)>,
    JsonBody(body): JsonBody<ChangeQuantity>,
) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Customer])?;
    let sku = Sku::parse(&sku).map_err(|_| ApiError::not_found(format!("item {sku} not found")))?;
    call.order(&id, false, || OrderCommand::ChangeQuantity {
        sku: sku.clone(),
        quantity: body.quantity,
        at: Utc::now(),
    })
    .await
}

/// Remove a line (the customer).
#[utoipa::path(delete, path = "/v1/orders/{id}/items/{sku}", tag = "orders",
    params(("id" = String, Path, description = "Order id"), ("sku" = String, Path, description = "SKU")),
    responses((status = 200, description = "Removed", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn remove_item(
    call: Invocation,
    Path((id, sku)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Customer])?;
    let sku = Sku::parse(&sku).map_err(|_| ApiError::not_found(format!("item {sku} not found")))?;
    call.order(&id, false, || OrderCommand::RemoveItem {
        sku: sku.clone(),
        at: Utc::now(),
    })
    .await
}

/// Place a draft order (the customer or an admin).
#[utoipa::path(post, path = "/v1/orders/{id}/place", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Placed", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn place(call: Invocation, Path(id): Path<String>) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Customer, Role::Admin])?;
    call.order(&id, false, || OrderCommand::Place { at: Utc::now() })
        .await
}

/// Cancel an order that has not shipped (the customer or an admin).
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", request_body = ReasonBody,
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Cancelled", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn cancel(
    call: Invocation,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Customer, Role::Admin])?;
    let reason =
        Reason::parse("reason", &body.reason).map_err(|e| ApiError::Validation(vec![e.into()]))?;
    call.order(&id, false, || OrderCommand::Cancel {
        reason: reason.clone(),
        at: Utc::now(),
    })
    .await
}

/// Mark a placed order paid by a captured payment of its full total (service or admin).
#[utoipa::path(post, path = "/v1/orders/{id}/mark-paid", tag = "orders", request_body = MarkPaid,
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Paid", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn mark_paid(
    call: Invocation,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<MarkPaid>,
) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Service, Role::Admin])?;
    let payment_id = Uuid::parse_str(&body.payment_id)
        .map_err(|_| ApiError::field("payment_id", "invalid_id", "must be a payment id (UUID)"))?;
    let done = call
        .commands
        .mark_paid(&call.principal, &call.ctx, &id, payment_id)
        .await?;
    Ok(accepted(done, None))
}

/// Ship a paid order (admin or service).
#[utoipa::path(post, path = "/v1/orders/{id}/ship", tag = "orders", request_body = Ship,
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Shipped", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn ship(
    call: Invocation,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Ship>,
) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Admin, Role::Service])?;
    let mut f = Fields::default();
    let carrier = f.take(Carrier::parse("carrier", &body.carrier));
    let tracking_number = f.take(TrackingNumber::parse(
        "tracking_number",
        &body.tracking_number,
    ));
    f.finish()?;
    let (carrier, tracking_number) = (valid(carrier)?, valid(tracking_number)?);
    call.order(&id, true, || OrderCommand::Ship {
        carrier: carrier.clone(),
        tracking_number: tracking_number.clone(),
        at: Utc::now(),
    })
    .await
}

/// Confirm delivery of a shipped order (admin or service).
#[utoipa::path(post, path = "/v1/orders/{id}/deliver", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Delivered", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn deliver(call: Invocation, Path(id): Path<String>) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Admin, Role::Service])?;
    call.order(&id, true, || OrderCommand::Deliver { at: Utc::now() })
        .await
}
