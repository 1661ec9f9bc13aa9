//! Commands as library calls: what the REST handlers run once a request is
//! parsed, and what in-process callers (the order–payment saga) use — the
//! same facts, the same rules, the same events.

use chrono::Utc;
use cqrs_es::Aggregate;
use domain::order::{OrderCommand, PaymentFacts};
use domain::payment::{OrderFacts, PaymentCommand};
use domain::{Order, Payment};
use eventlog::{Guard, Source};
use uuid::Uuid;

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::extract::CommandContext;
use crate::service::{attempt, execute, with_retry, Commands, Mode, Outcome, Target};

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
    command: impl Fn(&Order) -> Result<OrderCommand, ApiError>,
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

/// One attempt of a command on order `id` (visible to services too when
/// `services`) that relies on `guards` (facts read from other aggregates);
/// see [`with_retry`].
///
/// # Errors
/// As [`execute`].
pub async fn order_attempt(
    commands: &Commands,
    principal: &Principal,
    id: &str,
    ctx: &CommandContext,
    (source, services): (Source, bool),
    guards: Vec<Guard>,
    command: impl FnOnce(&Order) -> Result<OrderCommand, ApiError>,
) -> Result<(String, Outcome), ApiError> {
    let id = order_uuid(id)?;
    let visible = |order: &Order| principal.may_act_for(order.customer_id, services);
    let target = Target {
        id: &id,
        mode: Mode::Update,
        source,
    };
    let outcome = attempt(
        &commands.orders,
        target,
        Some(principal),
        ctx,
        guards,
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
    let payment_id = Uuid::new_v4();
    let id = payment_id.to_string();
    let order_key = order_id.to_string();
    let outcome = with_retry(Payment::TYPE, |source| {
        let (id, order_key) = (&id, &order_key);
        async move {
            let order = commands.orders.read(order_key, source, false).await?;
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
            let target = Target {
                id,
                mode: Mode::Create,
                source,
            };
            attempt(
                &commands.payments,
                target,
                Some(principal),
                ctx,
                order.guard().into_iter().collect(),
                |_: &Payment| true,
                |_: &Payment| {
                    Ok(PaymentCommand::Initiate {
                        payment_id,
                        order: facts,
                        at: Utc::now(),
                    })
                },
            )
            .await
        }
    })
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
    let payment_id_text = payment_id.to_string();
    with_retry(Order::TYPE, |source| {
        let payment_id_text = &payment_id_text;
        async move {
            let payment = commands
                .payments
                .read(payment_id_text, source, false)
                .await?;
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
            let guards = payment.guard().into_iter().collect();
            order_attempt(
                commands,
                principal,
                order_id,
                ctx,
                (source, true),
                guards,
                |_| {
                    Ok(OrderCommand::MarkPaid {
                        payment: facts,
                        at: Utc::now(),
                    })
                },
            )
            .await
        }
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
        |_| Ok(command.clone()),
    )
    .await?;
    Ok((id, outcome))
}
