//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{health, orders, payments, products, streams, users};

/// The command API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "shopstream command API",
        description = "Commands in, events appended. Every success returns `{id, version, position}`; \
                       `position` is the consistency token reads accept. Errors are RFC 9457 problem documents.",
        license(name = "Apache-2.0")
    ),
    paths(
        users::register, users::update, users::deactivate, users::reactivate, users::forget,
        products::create, products::update, products::retire,
        orders::create, orders::add_item, orders::change_quantity, orders::remove_item,
        orders::place, orders::cancel, orders::mark_paid, orders::ship, orders::deliver,
        payments::initiate, payments::authorize, payments::capture, payments::fail, payments::refund,
        streams::user_events, streams::order_events, streams::payment_events, streams::product_events,
        health::livez, health::readyz,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "users", description = "Sign-up, profile, (de)activation"),
        (name = "products", description = "The catalog (admin)"),
        (name = "orders", description = "Orders from cart to delivery"),
        (name = "payments", description = "Payments and the provider's webhooks"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON (what `/openapi.json` serves and what is checked in).
pub fn document() -> String {
    serde_json::to_string_pretty(&contract()).unwrap_or_default()
}

/// The document as served to `/docs`: the same contract, typed.
pub fn api() -> utoipa::openapi::OpenApi {
    serde_json::from_value(contract()).unwrap_or_else(|_| ApiDoc::openapi())
}

/// The generated document with every request field's rule stated, so a
/// request the schema calls valid is one the server accepts. The rules
/// come from the domain's own constants; `contract::tests` checks them
/// against the parsers.
pub fn contract() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    contract::tighten(&mut doc);
    doc
}

pub mod contract;
