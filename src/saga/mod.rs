//! The order–payment saga: a process manager that reacts to events and
//! issues commands, so that a placed order ends paid, or cancelled with its
//! money returned, without anyone driving it by hand.
//!
//! - `OrderPlaced` → initiate a payment for the order total.
//! - `PaymentInitiated` → watch it with a deadline.
//! - `PaymentCaptured` (full amount) → mark the order paid (or refund, when
//!   the order was cancelled meanwhile).
//! - `PaymentFailed` → retry with a new payment (up to `max_retries`, unless
//!   it timed out), else cancel the order with reason `payment_failed`.
//! - `OrderCancelled` → refund whatever was captured.
//! - A payment neither captured nor failed by its deadline → fail it as
//!   `timed_out` (which then cancels the order).
//!
//! It tails the store like a projection, with its own checkpoint, and calls
//! the domain through the command core (crate `commands`, the REST API's path). Every
//! command names its cause (`causation_id`) and carries a deterministic
//! idempotency key derived from the causing event, checked against the store
//! before it runs: a redelivered event, or a crash between a command and the
//! checkpoint, never issues a command twice.
//!
//! # Layout
//! - `mod.rs`: the saga: reactions, deadlines, the run loop.
//! - `state`: its SQL (checkpoint, watched payments).
//! - `clock`: the clock deadlines read (controllable in tests).
//! - `simulator`: the simulated payment provider.

pub mod clock;
pub mod simulator;
mod state;

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use auth::{Principal, Role};
use commands::{CommandContext, CommandError, Commands};
use domain::order::{OrderCommand, OrderEvent, OrderStatus};
use domain::payment::{PaymentCommand, PaymentEvent, PaymentStatus};
use domain::{Event, Reason};
use eventlog::{EventLog, StoredEvent};
use readmodel::{ReadDb, Wake};
use tokio::sync::watch;
use uuid::Uuid;

pub use self::clock::{Clock, ManualClock, SystemClock};

/// Whether a tailing step read events (a failed one is logged and retried).
pub(crate) fn busy(step: Result<usize, SagaError>, what: &str) -> bool {
    match step {
        Ok(n) => n > 0,
        Err(e) => {
            tracing::warn!(error = %e, "{what} failed; retrying");
            false
        }
    }
}

/// Waits for new events, the next tick, or shutdown.
pub(crate) async fn idle(
    woken: &mut watch::Receiver<u64>,
    tick: Duration,
    shutdown: &mut watch::Receiver<bool>,
) {
    tokio::select! {
        _ = woken.changed() => {}
        () = tokio::time::sleep(tick) => {}
        _ = shutdown.changed() => {}
    }
}

/// How the saga behaves.
#[derive(Debug, Clone)]
pub struct SagaConfig {
    /// How long a payment may stay neither captured nor failed.
    pub deadline: chrono::Duration,
    /// New payments tried after a failure (not after a timeout).
    pub max_retries: u32,
}

impl Default for SagaConfig {
    fn default() -> Self {
        Self {
            deadline: chrono::Duration::minutes(15),
            max_retries: 1,
        }
    }
}

/// Why a saga step failed (it is retried; nothing is skipped).
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error("event store: {0}")]
    Store(#[from] eventlog::StoreError),
    #[error("saga state: {0}")]
    Database(#[from] sqlx::Error),
    #[error("command failed: {0}")]
    Command(String),
    #[error("the saga's checkpoint moved concurrently")]
    CheckpointMoved,
}

/// The saga.
pub struct Saga {
    commands: Arc<Commands>,
    log: EventLog,
    db: ReadDb,
    clock: Arc<dyn Clock>,
    config: SagaConfig,
    principal: Principal,
}

const NAME: &str = "order_payment_saga";

fn reason(text: &str) -> Reason {
    Reason::parse("reason", text)
        .unwrap_or_else(|_| Reason::parse("reason", "saga").expect("a valid literal"))
}

impl Saga {
    /// A saga issuing commands through `commands`.
    pub fn new(
        commands: Arc<Commands>,
        log: EventLog,
        db: ReadDb,
        clock: Arc<dyn Clock>,
        config: SagaConfig,
    ) -> Self {
        Self {
            commands,
            log,
            db,
            clock,
            config,
            principal: Principal::new(NAME.to_string(), Role::Service),
        }
    }

    /// Processes the next batch of events; returns how many it read.
    ///
    /// # Errors
    /// Store or command failures (the batch is retried from the checkpoint).
    pub async fn step(&self) -> Result<usize, SagaError> {
        let from = state::checkpoint(&self.db, NAME).await?;
        let events = self.log.read_from(from, 100).await?;
        let Some(last) = events.last() else {
            return Ok(0);
        };
        for event in &events {
            let span = telemetry::follow(&event.metadata, || {
                tracing::info_span!(
                    "saga",
                    otel.name = %format!("saga {}", event.event_type),
                    otel.kind = "consumer",
                    event_type = %event.event_type,
                    aggregate_id = %event.aggregate_id,
                    position = event.position,
                )
            });
            self.react(event).instrument(span).await?;
        }
        state::advance(&self.db, NAME, from, last.cursor()).await?;
        Ok(events.len())
    }

    /// Fails every watched payment whose deadline has passed; returns how many.
    ///
    /// # Errors
    /// Store or command failures.
    pub async fn fire_deadlines(&self) -> Result<usize, SagaError> {
        let now = clock::format(self.clock.now());
        let due = state::due(&self.db, &now).await?;
        for (payment_id, order_id) in &due {
            let payment = self.commands.payments.load(payment_id).await?;
            if matches!(
                payment.aggregate().status,
                PaymentStatus::Initiated | PaymentStatus::Authorized
            ) {
                let ctx = CommandContext::caused_by(
                    order_id,
                    &format!("deadline:{payment_id}"),
                    format!("saga|deadline|{payment_id}"),
                );
                self.once(&ctx, |ctx| async move {
                    let fail = PaymentCommand::Fail {
                        reason: reason("timed_out"),
                        at: chrono::Utc::now(),
                    };
                    self.commands
                        .payment_step(&self.principal, &ctx, payment_id, fail)
                        .await
                        .map(|_| ())
                })
                .await?;
            }
            state::set_state(&self.db, payment_id, "expired").await?;
        }
        Ok(due.len())
    }

    /// Runs `command` unless a command with the same idempotency key already
    /// appended events. A rule violation means the facts moved on (the
    /// domain is the judge): logged, not retried.
    async fn once<F, Fut>(&self, ctx: &CommandContext, command: F) -> Result<(), SagaError>
    where
        F: FnOnce(CommandContext) -> Fut,
        Fut: std::future::Future<Output = Result<(), CommandError>>,
    {
        let key = ctx.idempotency_key.clone().unwrap_or_default();
        let applied = self.commands.applied(ctx).await;
        if applied.map_err(|e| SagaError::Command(e.to_string()))? {
            return Ok(());
        }
        match command(ctx.clone()).await {
            Ok(()) => Ok(()),
            Err(CommandError::Rule(rule)) => {
                tracing::info!(key, rule = rule.rule, "saga command no longer applies");
                Ok(())
            }
            Err(CommandError::NotFound(what)) => {
                tracing::warn!(key, what, "saga command refers to something unknown");
                Ok(())
            }
            Err(e) => Err(SagaError::Command(e.to_string())),
        }
    }

    fn context(event: &StoredEvent, step: &str) -> CommandContext {
        let correlation = event.metadata["correlation_id"]
            .as_str()
            .map_or_else(|| event.event_id.to_string(), str::to_string);
        CommandContext::caused_by(
            &correlation,
            &event.event_id.to_string(),
            format!("saga|{}|{step}", event.event_id),
        )
        .following(&event.metadata)
    }

    async fn react(&self, e: &StoredEvent) -> Result<(), SagaError> {
        // An event the saga cannot read is none of the ones it reacts to
        // (projections report such events as poison).
        let Ok(event) = &e.event else {
            return Ok(());
        };
        match event {
            Event::Order(OrderEvent::Placed { .. }) => {
                self.initiate(e, &e.aggregate_id, "initiate").await
            }
            Event::Payment(PaymentEvent::Initiated { order_id, .. }) => {
                let due = clock::format(e.recorded_at + self.config.deadline);
                state::watch(&self.db, &e.aggregate_id, &order_id.to_string(), &due).await?;
                Ok(())
            }
            Event::Payment(PaymentEvent::Captured { .. }) => self.captured(e).await,
            Event::Payment(PaymentEvent::Failed { reason, .. }) => {
                self.failed(e, reason.as_str()).await
            }
            Event::Order(OrderEvent::Cancelled { .. }) => self.cancelled(e).await,
            _ => Ok(()),
        }
    }

    async fn initiate(&self, e: &StoredEvent, order_id: &str, step: &str) -> Result<(), SagaError> {
        let Ok(order_id) = Uuid::parse_str(order_id) else {
            return Ok(());
        };
        self.once(&Self::context(e, step), |ctx| async move {
            self.commands
                .initiate_payment(&self.principal, &ctx, order_id)
                .await
                .map(|_| ())
        })
        .await
    }

    async fn captured(&self, e: &StoredEvent) -> Result<(), SagaError> {
        state::set_state(&self.db, &e.aggregate_id, "settled").await?;
        let payment = self.commands.payments.load(&e.aggregate_id).await?;
        let p = payment.aggregate();
        let (Some(order_id), Ok(payment_id)) = (p.order_id, Uuid::parse_str(&e.aggregate_id))
        else {
            return Ok(());
        };
        let order = self.commands.orders.load(&order_id.to_string()).await?;
        match order.aggregate().status {
            OrderStatus::Placed => {
                self.once(&Self::context(e, "mark-paid"), |ctx| async move {
                    self.commands
                        .mark_paid(&self.principal, &ctx, &order_id.to_string(), payment_id)
                        .await
                        .map(|_| ())
                })
                .await
            }
            // Cancelled while the payment was in flight: give the money back.
            OrderStatus::Cancelled => self.refund(e, &e.aggregate_id).await,
            _ => Ok(()),
        }
    }

    async fn failed(&self, e: &StoredEvent, why: &str) -> Result<(), SagaError> {
        state::set_state(&self.db, &e.aggregate_id, "settled").await?;
        let payment = self.commands.payments.load(&e.aggregate_id).await?;
        let Some(order_id) = payment.aggregate().order_id else {
            return Ok(());
        };
        let attempts = state::attempts(&self.db, &order_id.to_string()).await?;
        let order = self.commands.orders.load(&order_id.to_string()).await?;
        if order.aggregate().status != OrderStatus::Placed {
            return Ok(());
        }
        if why != "timed_out" && attempts <= i64::from(self.config.max_retries) {
            return self.initiate(e, &order_id.to_string(), "retry").await;
        }
        self.once(&Self::context(e, "cancel"), |ctx| async move {
            let cancel = || OrderCommand::Cancel {
                reason: reason("payment_failed"),
                at: chrono::Utc::now(),
            };
            self.commands
                .order_command(&self.principal, &ctx, &order_id.to_string(), true, cancel)
                .await
                .map(|_| ())
        })
        .await
    }

    async fn cancelled(&self, e: &StoredEvent) -> Result<(), SagaError> {
        for payment_id in state::payments_of(&self.db, &e.aggregate_id).await? {
            self.refund(e, &payment_id).await?;
        }
        Ok(())
    }

    /// Refunds what is left of a captured payment.
    async fn refund(&self, e: &StoredEvent, payment_id: &str) -> Result<(), SagaError> {
        let payment = self.commands.payments.load(payment_id).await?;
        let p = payment.aggregate();
        let left = p.captured_minor - p.refunded_minor;
        if p.status != PaymentStatus::Captured || left <= 0 {
            return Ok(());
        }
        let step = format!("refund|{payment_id}");
        self.once(&Self::context(e, &step), |ctx| async move {
            let refund = PaymentCommand::Refund {
                amount_minor: left,
                reason: reason("order cancelled"),
                at: chrono::Utc::now(),
            };
            self.commands
                .payment_step(&self.principal, &ctx, payment_id, refund)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Reacts to events as they come and fires deadlines every `tick`, until
    /// `shutdown` flips to true. Failures are retried, never skipped.
    pub async fn run(self, wake: Wake, tick: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut woken = wake.subscribe();
        if let Err(e) = state::ensure(&self.db, NAME).await {
            tracing::error!(error = %e, "cannot create the saga's checkpoint");
        }
        loop {
            if *shutdown.borrow() {
                return;
            }
            let busy = busy(self.step().await, "saga step");
            if let Err(e) = self.fire_deadlines().await {
                tracing::warn!(error = %e, "saga deadlines failed; retrying");
            }
            if !busy {
                idle(&mut woken, tick, &mut shutdown).await;
            }
        }
    }
}
