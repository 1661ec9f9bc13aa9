//! Commands as library calls: what the REST handlers run once a request is
//! parsed, and what in-process callers (the order–payment saga) use — the
//! same facts, the same rules, the same events.

use chrono::Utc;
use domain::order::{OrderCommand, PaymentFacts};
use domain::payment::{OrderFacts, PaymentCommand};
use domain::{Order, Payment};
use uuid::Uuid;

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::extract::CommandContext;
use crate::service::{execute, Commands, Mode, Outcome};

fn order_uuid(raw: &str) -> Result<String, ApiError> {
    Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound(format!("order {raw} not found")))
}

/// Runs `command` against order `id`, visible to its customer, admins and
/// (when `services`) services.
///
/// # Errors
/// As [`execute`].
pub async fn order_command(
    commands: &Commands,
    principal: &Principal,
    id: &str,
    ctx: &CommandContext,
    services: bool,
    command: impl FnOnce(&Order) -> Result<OrderCommand, ApiError>,
) -> Result<(String, Outcome), ApiError> {
    let id = order_uuid(id)?;
    let visible = |order: &Order| principal.may_act_for(order.customer_id, services);
    let outcome = execute(
        &commands.orders,
        &id,
        Mode::Update,
        Some(principal),
        ctx,
        visible,
        command,
    )
    .await?;
    Ok((id, outcome))
}

/// Initiates a payment for a placed order, for its total.
///
/// # Errors
/// 404 for an unknown or invisible order; rule violations.
pub async fn initiate_payment(
    commands: &Commands,
    principal: &Principal,
    ctx: &CommandContext,
    order_id: Uuid,
) -> Result<(String, Outcome), ApiError> {
    let order = commands.orders.load(&order_id.to_string()).await?;
    let o = order.aggregate();
    let not_found = || ApiError::NotFound(format!("order {order_id} not found"));
    if order.version() == 0 || !principal.may_act_for(o.customer_id, true) {
        return Err(not_found());
    }
    let (Some(customer_id), Some(total)) = (o.customer_id, o.total()) else {
        return Err(not_found());
    };
    let facts = OrderFacts {
        order_id,
        customer_id,
        status: o.status,
        total,
    };
    let payment_id = Uuid::new_v4();
    let id = payment_id.to_string();
    let command = |_: &Payment| {
        Ok(PaymentCommand::Initiate {
            payment_id,
            order: facts,
            at: Utc::now(),
        })
    };
    let outcome = execute(
        &commands.payments,
        &id,
        Mode::Create,
        Some(principal),
        ctx,
        |_: &Payment| true,
        command,
    )
    .await?;
    Ok((id, outcome))
}

/// Marks an order paid by a captured payment of its full total (service or admin).
///
/// # Errors
/// 403 for other roles; 404 for unknown ids; rule violations.
pub async fn mark_paid(
    commands: &Commands,
    principal: &Principal,
    ctx: &CommandContext,
    order_id: &str,
    payment_id: Uuid,
) -> Result<(String, Outcome), ApiError> {
    principal.require(&[Role::Service, Role::Admin])?;
    let payment = commands.payments.load(&payment_id.to_string()).await?;
    let p = payment.aggregate();
    let Some(paid_order) = p.order_id else {
        return Err(ApiError::NotFound(format!(
            "payment {payment_id} not found"
        )));
    };
    let facts = PaymentFacts {
        payment_id,
        order_id: paid_order,
        captured: p.captured(),
        refunded_minor: p.refunded_minor,
    };
    order_command(commands, principal, order_id, ctx, true, |_| {
        Ok(OrderCommand::MarkPaid {
            payment: facts,
            at: Utc::now(),
        })
    })
    .await
}

/// Runs a provider step (authorize, capture, fail, refund) on a payment (service or admin).
///
/// # Errors
/// 403 for other roles; 404 for unknown ids; rule violations.
pub async fn payment_command(
    commands: &Commands,
    principal: &Principal,
    ctx: &CommandContext,
    payment_id: &str,
    command: PaymentCommand,
) -> Result<(String, Outcome), ApiError> {
    principal.require(&[Role::Service, Role::Admin])?;
    let id = Uuid::parse_str(payment_id)
        .map_err(|_| ApiError::NotFound(format!("payment {payment_id} not found")))?
        .to_string();
    let outcome = execute(
        &commands.payments,
        &id,
        Mode::Update,
        Some(principal),
        ctx,
        |_: &Payment| true,
        |_| Ok(command),
    )
    .await?;
    Ok((id, outcome))
}
