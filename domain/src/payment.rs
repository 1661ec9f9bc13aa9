//! The `Payment` aggregate: initiated for a placed order, authorized,
//! captured (never above the authorization), failed, refunded (in parts,
//! never above the captured amount).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::domain_event;
use crate::order::OrderStatus;
use crate::{DomainError, EventName, Money, Reason};

/// The order a payment is initiated for, as the application found it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFacts {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    /// The order's total; the payment's amount is always exactly this.
    pub total: Money,
}

/// What a payment can be asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentCommand {
    Initiate {
        payment_id: Uuid,
        order: OrderFacts,
        at: DateTime<Utc>,
    },
    Authorize {
        amount_minor: i64,
        at: DateTime<Utc>,
    },
    Capture {
        amount_minor: i64,
        at: DateTime<Utc>,
    },
    Fail {
        reason: Reason,
        at: DateTime<Utc>,
    },
    Refund {
        amount_minor: i64,
        reason: Reason,
        at: DateTime<Utc>,
    },
}

/// What happened to a payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentEvent {
    #[serde(rename = "PaymentInitiated")]
    Initiated {
        payment_id: Uuid,
        order_id: Uuid,
        customer_id: Uuid,
        amount: Money,
        at: DateTime<Utc>,
    },
    #[serde(rename = "PaymentAuthorized")]
    Authorized { amount: Money, at: DateTime<Utc> },
    #[serde(rename = "PaymentCaptured")]
    Captured { amount: Money, at: DateTime<Utc> },
    #[serde(rename = "PaymentFailed")]
    Failed { reason: Reason, at: DateTime<Utc> },
    #[serde(rename = "PaymentRefunded")]
    Refunded {
        amount: Money,
        reason: Reason,
        at: DateTime<Utc>,
    },
}

impl EventName for PaymentEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Initiated { .. } => "PaymentInitiated",
            Self::Authorized { .. } => "PaymentAuthorized",
            Self::Captured { .. } => "PaymentCaptured",
            Self::Failed { .. } => "PaymentFailed",
            Self::Refunded { .. } => "PaymentRefunded",
        }
    }
}
domain_event!(PaymentEvent);

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    #[default]
    New,
    Initiated,
    Authorized,
    Captured,
    Failed,
}

/// A payment's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub amount: Option<Money>,
    pub status: PaymentStatus,
    pub authorized_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
}

impl Payment {
    /// Whether the payment has been initiated.
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// The captured amount, when captured.
    pub fn captured(&self) -> Option<Money> {
        let amount = self.amount?;
        (self.status == PaymentStatus::Captured).then_some(Money {
            amount_minor: self.captured_minor,
            currency: amount.currency,
        })
    }

    fn money(
        &self,
        amount_minor: i64,
        limit: i64,
        rule: &'static str,
    ) -> Result<Money, DomainError> {
        let currency = self.amount.map(|a| a.currency).ok_or_else(|| {
            DomainError::conflict("payment_not_found", "the payment does not exist")
        })?;
        if amount_minor <= 0 {
            return Err(DomainError::invalid(
                "amount_minor",
                "amount_out_of_range",
                "amount_minor must be positive",
            ));
        }
        if amount_minor > limit {
            return Err(DomainError::invalid(
                "amount_minor",
                rule,
                format!("amount_minor must not exceed {limit}"),
            ));
        }
        Ok(Money {
            amount_minor,
            currency,
        })
    }

    fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, DomainError> {
        use PaymentStatus as S;
        if !self.exists() && !matches!(command, PaymentCommand::Initiate { .. }) {
            return Err(DomainError::conflict(
                "payment_not_found",
                "the payment does not exist",
            ));
        }
        let state_error = |rule: &'static str, what: &str| {
            Err(DomainError::conflict(
                rule,
                format!("the payment cannot be {what} now"),
            ))
        };
        match command {
            PaymentCommand::Initiate {
                payment_id,
                order,
                at,
            } => {
                if self.exists() {
                    return Err(DomainError::conflict(
                        "payment_exists",
                        "the payment already exists",
                    ));
                }
                if order.status != OrderStatus::Placed {
                    return Err(DomainError::invalid(
                        "order_id",
                        "order_not_placed",
                        "payments can only be initiated for a placed, unpaid order",
                    ));
                }
                Ok(vec![PaymentEvent::Initiated {
                    payment_id,
                    order_id: order.order_id,
                    customer_id: order.customer_id,
                    amount: order.total,
                    at,
                }])
            }
            PaymentCommand::Authorize { amount_minor, at } => {
                if self.status != S::Initiated {
                    return state_error("payment_not_initiated", "authorized");
                }
                let limit = self.amount.map_or(0, |a| a.amount_minor);
                let amount = self.money(amount_minor, limit, "authorization_exceeds_amount")?;
                Ok(vec![PaymentEvent::Authorized { amount, at }])
            }
            PaymentCommand::Capture { amount_minor, at } => {
                if self.status != S::Authorized {
                    return state_error("payment_not_authorized", "captured");
                }
                let amount = self.money(
                    amount_minor,
                    self.authorized_minor,
                    "capture_exceeds_authorized",
                )?;
                Ok(vec![PaymentEvent::Captured { amount, at }])
            }
            PaymentCommand::Fail { reason, at } => match self.status {
                S::Initiated | S::Authorized => Ok(vec![PaymentEvent::Failed { reason, at }]),
                S::Failed => state_error("payment_already_failed", "failed"),
                _ => state_error("payment_already_captured", "failed"),
            },
            PaymentCommand::Refund {
                amount_minor,
                reason,
                at,
            } => {
                if self.status != S::Captured {
                    return state_error("payment_not_captured", "refunded");
                }
                let refundable = self.captured_minor - self.refunded_minor;
                let amount = self.money(amount_minor, refundable, "refund_exceeds_captured")?;
                Ok(vec![PaymentEvent::Refunded { amount, reason, at }])
            }
        }
    }
}

crate::event::aggregate!(Payment, "Payment", PaymentCommand, PaymentEvent);

impl Payment {
    /// Folds one event into the state (cqrs-es's `apply`).
    fn evolve(&mut self, event: PaymentEvent) {
        match event {
            PaymentEvent::Initiated {
                payment_id,
                order_id,
                customer_id,
                amount,
                ..
            } => {
                self.id = Some(payment_id);
                self.order_id = Some(order_id);
                self.customer_id = Some(customer_id);
                self.amount = Some(amount);
                self.status = PaymentStatus::Initiated;
            }
            PaymentEvent::Authorized { amount, .. } => {
                self.authorized_minor = amount.amount_minor;
                self.status = PaymentStatus::Authorized;
            }
            PaymentEvent::Captured { amount, .. } => {
                self.captured_minor = amount.amount_minor;
                self.status = PaymentStatus::Captured;
            }
            PaymentEvent::Failed { .. } => self.status = PaymentStatus::Failed,
            PaymentEvent::Refunded { amount, .. } => self.refunded_minor += amount.amount_minor,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::test_support::{eur, expect_rule, t0};

    fn facts(status: OrderStatus) -> OrderFacts {
        OrderFacts {
            order_id: Uuid::from_u128(1),
            customer_id: Uuid::from_u128(2),
            status,
            total: eur(1000),
        }
    }

    fn initiated() -> PaymentEvent {
        PaymentEvent::Initiated {
            payment_id: Uuid::from_u128(3),
            order_id: Uuid::from_u128(1),
            customer_id: Uuid::from_u128(2),
            amount: eur(1000),
            at: t0(),
        }
    }

    fn authorized(a: i64) -> PaymentEvent {
        PaymentEvent::Authorized {
            amount: eur(a),
            at: t0(),
        }
    }
    fn captured(a: i64) -> PaymentEvent {
        PaymentEvent::Captured {
            amount: eur(a),
            at: t0(),
        }
    }
    fn reason() -> Reason {
        Reason::parse("reason", "damaged").unwrap()
    }
    fn refund(a: i64) -> PaymentCommand {
        PaymentCommand::Refund {
            amount_minor: a,
            reason: reason(),
            at: t0(),
        }
    }
    fn refunded(a: i64) -> PaymentEvent {
        PaymentEvent::Refunded {
            amount: eur(a),
            reason: reason(),
            at: t0(),
        }
    }

    #[test]
    fn initiate_for_placed_order_takes_its_total() {
        TestFramework::<Payment>::with(())
            .given_no_previous_events()
            .when(PaymentCommand::Initiate {
                payment_id: Uuid::from_u128(3),
                order: facts(OrderStatus::Placed),
                at: t0(),
            })
            .then_expect_events(vec![initiated()]);
    }

    #[test]
    fn initiate_needs_a_placed_order() {
        for status in [
            OrderStatus::Draft,
            OrderStatus::Paid,
            OrderStatus::Cancelled,
        ] {
            expect_rule::<Payment>(
                vec![],
                PaymentCommand::Initiate {
                    payment_id: Uuid::from_u128(3),
                    order: facts(status),
                    at: t0(),
                },
                "order_not_placed",
            );
        }
    }

    #[test]
    fn authorize_within_amount() {
        TestFramework::<Payment>::with(())
            .given(vec![initiated()])
            .when(PaymentCommand::Authorize {
                amount_minor: 1000,
                at: t0(),
            })
            .then_expect_events(vec![authorized(1000)]);
        expect_rule::<Payment>(
            vec![initiated()],
            PaymentCommand::Authorize {
                amount_minor: 1001,
                at: t0(),
            },
            "authorization_exceeds_amount",
        );
        expect_rule::<Payment>(
            vec![initiated()],
            PaymentCommand::Authorize {
                amount_minor: 0,
                at: t0(),
            },
            "amount_out_of_range",
        );
        expect_rule::<Payment>(
            vec![initiated(), authorized(1000)],
            PaymentCommand::Authorize {
                amount_minor: 1000,
                at: t0(),
            },
            "payment_not_initiated",
        );
    }

    #[test]
    fn capture_not_more_than_authorized() {
        TestFramework::<Payment>::with(())
            .given(vec![initiated(), authorized(800)])
            .when(PaymentCommand::Capture {
                amount_minor: 800,
                at: t0(),
            })
            .then_expect_events(vec![captured(800)]);
        expect_rule::<Payment>(
            vec![initiated(), authorized(800)],
            PaymentCommand::Capture {
                amount_minor: 801,
                at: t0(),
            },
            "capture_exceeds_authorized",
        );
        expect_rule::<Payment>(
            vec![initiated()],
            PaymentCommand::Capture {
                amount_minor: 1,
                at: t0(),
            },
            "payment_not_authorized",
        );
    }

    #[test]
    fn fail_before_capture_only() {
        TestFramework::<Payment>::with(())
            .given(vec![initiated(), authorized(1000)])
            .when(PaymentCommand::Fail {
                reason: reason(),
                at: t0(),
            })
            .then_expect_events(vec![PaymentEvent::Failed {
                reason: reason(),
                at: t0(),
            }]);
        expect_rule::<Payment>(
            vec![initiated(), authorized(1000), captured(1000)],
            PaymentCommand::Fail {
                reason: reason(),
                at: t0(),
            },
            "payment_already_captured",
        );
        expect_rule::<Payment>(
            vec![
                initiated(),
                PaymentEvent::Failed {
                    reason: reason(),
                    at: t0(),
                },
            ],
            PaymentCommand::Fail {
                reason: reason(),
                at: t0(),
            },
            "payment_already_failed",
        );
    }

    #[test]
    fn partial_refunds_never_exceed_captured() {
        let given = vec![initiated(), authorized(1000), captured(1000)];
        TestFramework::<Payment>::with(())
            .given(given.clone())
            .when(refund(400))
            .then_expect_events(vec![refunded(400)]);
        TestFramework::<Payment>::with(())
            .given([given.clone(), vec![refunded(400)]].concat())
            .when(refund(600))
            .then_expect_events(vec![refunded(600)]);
        expect_rule::<Payment>(
            [given.clone(), vec![refunded(400)]].concat(),
            refund(601),
            "refund_exceeds_captured",
        );
        expect_rule::<Payment>(
            vec![initiated(), authorized(1000)],
            refund(1),
            "payment_not_captured",
        );
    }

    #[test]
    fn unknown_payment_rejects_commands() {
        expect_rule::<Payment>(vec![], refund(1), "payment_not_found");
    }
}
