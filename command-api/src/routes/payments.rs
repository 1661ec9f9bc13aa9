//! `/v1/payments`: initiated by the customer (or the provider), moved on by
//! the payment provider's webhooks (service) or an admin.

use axum::extract::Path;
use axum::response::Response;
use chrono::Utc;
use domain::payment::PaymentCommand;
use domain::Reason;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{accepted, Accepted, CommandErrors, ReasonBody};
use crate::error::ApiError;
use crate::extract::{Invocation, JsonBody};

/// A payment for a placed order; its amount is the order's total.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitiatePayment {
    pub order_id: String,
}

/// An amount in the payment's currency.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountBody {
    /// Minor units, positive.
    #[schema(example = 3998)]
    #[serde(deserialize_with = "super::integral::i64")]
    pub amount_minor: i64,
}

/// A refund.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Minor units, positive; all refunds together never exceed the capture.
    #[serde(deserialize_with = "super::integral::i64")]
    pub amount_minor: i64,
    pub reason: String,
}

/// Initiate a payment for a placed order (its customer, a service or an admin).
#[utoipa::path(post, path = "/v1/payments", tag = "payments", operation_id = "initiate_payment", request_body = InitiatePayment,
    responses((status = 201, description = "Initiated", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn initiate(
    call: Invocation,
    JsonBody(body): JsonBody<InitiatePayment>,
) -> Result<Response, ApiError> {
    let order_id = Uuid::parse_str(&body.order_id)
        .map_err(|_| ApiError::field("order_id", "invalid_id", "must be an order id (UUID)"))?;
    let done = call
        .commands
        .initiate_payment(&call.principal, &call.ctx, order_id)
        .await?;
    Ok(accepted(done, Some("/v1/payments")))
}

impl Invocation {
    /// A payment provider's step on payment `id`.
    async fn payment_step(&self, id: &str, command: PaymentCommand) -> Result<Response, ApiError> {
        let done = (self.commands)
            .payment_step(&self.principal, &self.ctx, id, command)
            .await?;
        Ok(accepted(done, None))
    }
}

/// Record an authorization (service or admin).
#[utoipa::path(post, path = "/v1/payments/{id}/authorize", tag = "payments", request_body = AmountBody,
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "Authorized", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn authorize(
    call: Invocation,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AmountBody>,
) -> Result<Response, ApiError> {
    let command = PaymentCommand::Authorize {
        amount_minor: body.amount_minor,
        at: Utc::now(),
    };
    call.payment_step(&id, command).await
}

/// Record a capture, not above the authorization (service or admin).
#[utoipa::path(post, path = "/v1/payments/{id}/capture", tag = "payments", request_body = AmountBody,
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "Captured", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn capture(
    call: Invocation,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AmountBody>,
) -> Result<Response, ApiError> {
    let command = PaymentCommand::Capture {
        amount_minor: body.amount_minor,
        at: Utc::now(),
    };
    call.payment_step(&id, command).await
}

/// Record a failure (service or admin).
#[utoipa::path(post, path = "/v1/payments/{id}/fail", tag = "payments", request_body = ReasonBody,
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "Failed", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn fail(
    call: Invocation,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    let reason =
        Reason::parse("reason", &body.reason).map_err(|e| ApiError::Validation(vec![e.into()]))?;
    let command = PaymentCommand::Fail {
        reason,
        at: Utc::now(),
    };
    call.payment_step(&id, command).await
}

/// Record a (partial) refund (service or admin).
#[utoipa::path(post, path = "/v1/payments/{id}/refund", tag = "payments", request_body = RefundBody,
    params(("id" = String, Path, description = "Payment id")),
    responses((status = 200, description = "Refunded", body = Accepted), CommandErrors),
    security(("bearer" = [])))]
pub async fn refund(
    call: Invocation,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RefundBody>,
) -> Result<Response, ApiError> {
    let reason =
        Reason::parse("reason", &body.reason).map_err(|e| ApiError::Validation(vec![e.into()]))?;
    let command = PaymentCommand::Refund {
        amount_minor: body.amount_minor,
        reason,
        at: Utc::now(),
    };
    call.payment_step(&id, command).await
}
