//! The simulated payment provider, for the embedded demo and tests — off
//! unless asked for, and never in production mode. It plays the provider's
//! part: after a delay it authorizes and captures a new payment, or fails it
//! with a configured probability and reason, by calling the same payment
//! commands a real provider's webhooks call (`POST /v1/payments/{id}/…`).
//! A payment it had not settled when its process died is left to the
//! saga's deadline.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use auth::{Principal, Role};
use commands::{CommandContext, Commands};
use domain::payment::{PaymentCommand, PaymentEvent};
use domain::{Event, Reason};
use eventlog::{EventLog, StoredEvent};
use readmodel::{ReadDb, Wake};
use tokio::sync::watch;
use tracing::Instrument;

use super::{state, SagaError};

const NAME: &str = "payment_simulator";

/// How the simulated provider behaves.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Time from initiation to the provider's answer.
    pub delay: Duration,
    /// Share of payments that fail (0.0..=1.0), chosen by payment id.
    pub failure_rate: f64,
    /// The failure reason it reports.
    pub failure_reason: String,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(500),
            failure_rate: 0.1,
            failure_reason: "card_declined".into(),
        }
    }
}

/// The simulated provider.
pub struct Simulator {
    commands: Arc<Commands>,
    log: EventLog,
    db: ReadDb,
    config: SimulatorConfig,
}

fn fails(payment_id: &str, rate: f64) -> bool {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    payment_id.hash(&mut h);
    (h.finish() % 10_000) as f64 / 10_000.0 < rate
}

impl Simulator {
    /// A provider answering through `commands`.
    pub fn new(
        commands: Arc<Commands>,
        log: EventLog,
        db: ReadDb,
        config: SimulatorConfig,
    ) -> Self {
        Self {
            commands,
            log,
            db,
            config,
        }
    }

    async fn answer(commands: Arc<Commands>, config: SimulatorConfig, event: StoredEvent) {
        tokio::time::sleep(config.delay).await;
        let principal = Principal::new(NAME, Role::Service);
        let payment_id = event.aggregate_id.clone();
        let amount = match &event.event {
            Ok(Event::Payment(PaymentEvent::Initiated { amount, .. })) => amount.amount_minor,
            _ => 0,
        };
        let correlation = event.metadata["correlation_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ctx = |step: &str| {
            CommandContext::caused_by(
                &correlation,
                &event.event_id.to_string(),
                format!("sim|{}|{step}", event.event_id),
            )
            .following(&event.metadata)
        };
        let steps: Vec<(&str, PaymentCommand)> = if fails(&payment_id, config.failure_rate) {
            let reason = Reason::parse("reason", &config.failure_reason)
                .unwrap_or_else(|_| Reason::parse("reason", "declined").expect("literal"));
            vec![(
                "fail",
                PaymentCommand::Fail {
                    reason,
                    at: chrono::Utc::now(),
                },
            )]
        } else {
            vec![
                (
                    "authorize",
                    PaymentCommand::Authorize {
                        amount_minor: amount,
                        at: chrono::Utc::now(),
                    },
                ),
                (
                    "capture",
                    PaymentCommand::Capture {
                        amount_minor: amount,
                        at: chrono::Utc::now(),
                    },
                ),
            ]
        };
        for (step, command) in steps {
            if let Err(e) = commands
                .payment_step(&principal, &ctx(step), &payment_id, command)
                .await
            {
                tracing::info!(payment_id, step, error = %e, "simulated provider step not applied");
                return;
            }
        }
    }

    /// Answers the next batch of new payments; returns how many events it read.
    ///
    /// # Errors
    /// Store failures.
    pub async fn step(&self) -> Result<usize, SagaError> {
        let from = state::checkpoint(&self.db, NAME).await?;
        let events = self.log.read_from(from, 100).await?;
        let Some(last) = events.last() else {
            return Ok(0);
        };
        let initiated = |e: &&StoredEvent| {
            matches!(e.event, Ok(Event::Payment(PaymentEvent::Initiated { .. })))
        };
        for e in events.iter().filter(initiated) {
            let span = telemetry::follow(&e.metadata, || {
                tracing::info_span!(
                    "payment provider",
                    otel.kind = "server",
                    payment_id = %e.aggregate_id,
                )
            });
            tokio::spawn(
                Self::answer(self.commands.clone(), self.config.clone(), e.clone())
                    .instrument(span),
            );
        }
        state::advance(&self.db, NAME, from, last.cursor()).await?;
        Ok(events.len())
    }

    /// Runs until `shutdown` flips to true.
    pub async fn run(self, wake: Wake, tick: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut woken = wake.subscribe();
        loop {
            if *shutdown.borrow() {
                return;
            }
            if !super::busy(self.step().await, "payment simulator step") {
                super::idle(&mut woken, tick, &mut shutdown).await;
            }
        }
    }
}
