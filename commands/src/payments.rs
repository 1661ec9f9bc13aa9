//! Payments: initiation for a placed order's total, and the provider's
//! steps (authorize, capture, fail, refund).

use auth::{Principal, Role};
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::payment::{OrderFacts, PaymentCommand};
use domain::Payment;
use uuid::Uuid;

use crate::run::{read, Attempt, Done, Mode};
use crate::{CommandContext, CommandError, Commands};

impl Commands {
    /// Initiates a payment for a placed order, for its total (its customer,
    /// an admin or a service).
    ///
    /// # Errors
    /// [`CommandError::NotFound`] for an unknown or invisible order; rules.
    pub async fn initiate_payment(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        order_id: Uuid,
    ) -> Result<Done, CommandError> {
        let payment_id = Uuid::new_v4();
        let id = payment_id.to_string();
        let order_key = order_id.to_string();
        self.run(Payment::TYPE, |source| {
            let (id, order_key) = (&id, &order_key);
            async move {
                let order = read(&self.orders, order_key, source, false).await?;
                let o = order.aggregate();
                let not_found = || CommandError::NotFound(format!("order {order_id} not found"));
                if order.version() == 0 || !who.may_act_for(o.customer_id, true) {
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
                Attempt::new(&self.payments, id, Mode::Create, Some(who), ctx)
                    .guarded(order.guard().into_iter().collect())
                    .decide(
                        source,
                        |_| true,
                        |_| {
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
        .await
    }

    /// Runs a provider step (authorize, capture, fail, refund) on a payment
    /// (service or admin).
    ///
    /// # Errors
    /// [`CommandError::Forbidden`] for other roles; unknown ids; rules.
    pub async fn payment_step(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        payment_id: &str,
        command: PaymentCommand,
    ) -> Result<Done, CommandError> {
        who.require(&[Role::Service, Role::Admin])?;
        let id = Uuid::parse_str(payment_id)
            .map_err(|_| CommandError::NotFound(format!("payment {payment_id} not found")))?
            .to_string();
        self.run(Payment::TYPE, |source| {
            Attempt::new(&self.payments, &id, Mode::Update, Some(who), ctx).decide(
                source,
                |_| true,
                |_| Ok(command.clone()),
            )
        })
        .await
    }
}
