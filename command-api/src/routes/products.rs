//! `/v1/products`: the catalog (admin only).

use axum::extract::Path;
use axum::response::Response;
use domain::{Currency, Money, ProductName, Sku};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{accepted, valid, Accepted, CommandErrors, Fields, MoneyBody};
use crate::auth::Role;
use crate::error::ApiError;
use crate::extract::{Invocation, JsonBody};

/// A new product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// Stock-keeping unit: 1..=64 of A-Z, 0-9, `-`, `_`, `.` (upper-cased).
    #[schema(example = "TEE-BLUE-M")]
    pub sku: String,
    #[schema(example = "Blue tee, M")]
    pub name: String,
    pub unit_price: MoneyBody,
}

/// Product changes; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub unit_price: Option<MoneyBody>,
}

/// Parses a price, reporting against `unit_price.*`.
pub fn parse_price(f: &mut Fields, body: &MoneyBody) -> Option<Money> {
    let currency = f.take(Currency::parse(&body.currency).map_err(|mut e| {
        e.field = "unit_price.currency";
        e
    }))?;
    f.take(Money::parse_amount(
        "unit_price.amount_minor",
        body.amount_minor,
        currency,
        false,
    ))
}

fn path_sku(raw: &str) -> Result<Sku, ApiError> {
    Sku::parse(raw).map_err(|_| ApiError::not_found(format!("product {raw} not found")))
}

/// Create a product (admin).
#[utoipa::path(post, path = "/v1/products", tag = "products", operation_id = "create_product", request_body = CreateProduct,
    responses((status = 201, description = "Created", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn create(
    call: Invocation,
    JsonBody(body): JsonBody<CreateProduct>,
) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Admin])?;
    let mut f = Fields::default();
    let sku = f.take(Sku::parse(&body.sku));
    let name = f.take(ProductName::parse("name", &body.name));
    let unit_price = parse_price(&mut f, &body.unit_price);
    f.finish()?;
    let (sku, name, unit_price) = (valid(sku)?, valid(name)?, valid(unit_price)?);
    let done = call
        .commands
        .create_product(&call.principal, &call.ctx, sku, name, unit_price)
        .await?;
    Ok(accepted(done, Some("/v1/products")))
}

/// Rename and/or reprice a product (admin).
#[utoipa::path(patch, path = "/v1/products/{sku}", tag = "products", operation_id = "update_product", request_body = UpdateProduct,
    params(("sku" = String, Path, description = "SKU")),
    responses((status = 200, description = "Updated", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn update(
    call: Invocation,
    Path(sku): Path<String>,
    JsonBody(body): JsonBody<UpdateProduct>,
) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Admin])?;
    let sku = path_sku(&sku)?;
    let mut f = Fields::default();
    let name = body
        .name
        .as_deref()
        .map(|n| f.take(ProductName::parse("name", n)));
    let unit_price = body.unit_price.as_ref().map(|p| parse_price(&mut f, p));
    if name.is_none() && unit_price.is_none() {
        return Err(ApiError::field(
            "$",
            "nothing_to_change",
            "send name and/or unit_price",
        ));
    }
    f.finish()?;
    let done = call
        .commands
        .update_product(
            &call.principal,
            &call.ctx,
            &sku,
            name.flatten(),
            unit_price.flatten(),
        )
        .await?;
    Ok(accepted(done, None))
}

/// Retire a product: it can no longer be added to orders (admin).
#[utoipa::path(post, path = "/v1/products/{sku}/retire", tag = "products", operation_id = "retire_product",
    params(("sku" = String, Path, description = "SKU")),
    responses((status = 200, description = "Retired", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn retire(call: Invocation, Path(sku): Path<String>) -> Result<Response, ApiError> {
    call.principal.require(&[Role::Admin])?;
    let sku = path_sku(&sku)?;
    let done = call
        .commands
        .retire_product(&call.principal, &call.ctx, &sku)
        .await?;
    Ok(accepted(done, None))
}
