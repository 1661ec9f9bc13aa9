//! `/v1/products`: the catalog (admin only).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::Utc;
use domain::product::ProductCommand;
use domain::{Currency, Money, Product, ProductName, Sku};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{accepted, valid, CommandErrors, Fields, MoneyBody};
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{CommandContext, JsonBody};
use crate::service::{execute, Accepted, Commands, Mode};

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
    Sku::parse(raw).map_err(|_| ApiError::NotFound(format!("product {raw} not found")))
}

/// Create a product (admin).
#[utoipa::path(post, path = "/v1/products", tag = "products", operation_id = "create_product", request_body = CreateProduct,
    responses((status = 201, description = "Created", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn create(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    ctx: CommandContext,
    JsonBody(body): JsonBody<CreateProduct>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Admin])?;
    let mut f = Fields::default();
    let sku = f.take(Sku::parse(&body.sku));
    let name = f.take(ProductName::parse("name", &body.name));
    let unit_price = parse_price(&mut f, &body.unit_price);
    f.finish()?;
    let (sku, name, unit_price) = (valid(sku)?, valid(name)?, valid(unit_price)?);
    let id = sku.as_str().to_string();
    let outcome = execute(
        &commands.products,
        &id,
        Mode::Create,
        Some(&principal),
        &ctx,
        |_: &Product| true,
        |_| {
            Ok(ProductCommand::Create {
                sku: sku.clone(),
                name: name.clone(),
                unit_price,
                at: Utc::now(),
            })
        },
    )
    .await
    .map_err(|e| match e {
        ApiError::Rule(r) if r.rule == "already_exists" => {
            ApiError::Rule(domain::DomainError::conflict("product_exists", r.message))
        }
        other => other,
    })?;
    Ok(accepted(&id, outcome, Some(format!("/v1/products/{id}"))))
}

/// Rename and/or reprice a product (admin).
#[utoipa::path(patch, path = "/v1/products/{sku}", tag = "products", operation_id = "update_product", request_body = UpdateProduct,
    params(("sku" = String, Path, description = "SKU")),
    responses((status = 200, description = "Updated", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn update(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(sku): Path<String>,
    ctx: CommandContext,
    JsonBody(body): JsonBody<UpdateProduct>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Admin])?;
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
    let id = sku.as_str().to_string();
    let outcome = execute(
        &commands.products,
        &id,
        Mode::Update,
        Some(&principal),
        &ctx,
        |_: &Product| true,
        |_| {
            Ok(ProductCommand::Update {
                name: name.clone().flatten(),
                unit_price: unit_price.flatten(),
                at: Utc::now(),
            })
        },
    )
    .await?;
    Ok(accepted(&id, outcome, None))
}

/// Retire a product: it can no longer be added to orders (admin).
#[utoipa::path(post, path = "/v1/products/{sku}/retire", tag = "products", operation_id = "retire_product",
    params(("sku" = String, Path, description = "SKU")),
    responses((status = 200, description = "Retired", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn retire(
    State(commands): State<Arc<Commands>>,
    Caller(principal): Caller,
    Path(sku): Path<String>,
    ctx: CommandContext,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Admin])?;
    let id = path_sku(&sku)?.as_str().to_string();
    let outcome = execute(
        &commands.products,
        &id,
        Mode::Update,
        Some(&principal),
        &ctx,
        |_: &Product| true,
        |_| Ok(ProductCommand::Retire { at: Utc::now() }),
    )
    .await?;
    Ok(accepted(&id, outcome, None))
}
