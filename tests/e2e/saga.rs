//! The order–payment saga, in process against real databases: happy path,
//! failed payment → cancelled order, cancel after capture → refund, deadline
//! expiry with a controllable clock, and redelivery issuing nothing twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use commands::Commands;
use cqrs_es::Aggregate;
use domain::order::{CustomerFacts, OrderCommand, OrderStatus, ProductFacts};
use domain::payment::{PaymentCommand, PaymentStatus};
use domain::user::UserCommand;
use domain::{Currency, Email, Money, PersonName, Personal, ProductName, Reason, Sku};
use eventlog::testing::TestDatabase;
use eventlog::{EventLog, Repository};
use readmodel::ReadDb;
use shopstream::saga::simulator::{Simulator, SimulatorConfig};
use shopstream::saga::{Clock, ManualClock, Saga, SagaConfig};
use uuid::Uuid;

struct World {
    commands: Arc<Commands>,
    log: EventLog,
    db: ReadDb,
}

async fn exec<A>(repo: &Repository<A>, id: &str, command: A::Command)
where
    A: Aggregate<Error = domain::DomainError, Services = ()> + Clone + Send + Sync + 'static,
{
    let loaded = repo.load(id).await.expect("load");
    let events = repo.decide(&loaded, command, &()).await.expect("valid");
    repo.commit(loaded, events, HashMap::new(), &[])
        .await
        .expect("commit");
}

impl World {
    async fn new(t: &TestDatabase) -> Self {
        Self {
            commands: Arc::new(Commands::new(&t.db, 0, 100, t.keys())),
            log: EventLog::new(t.db.clone()),
            db: ReadDb::connect(&t.url, 2)
                .await
                .expect("read db")
                .with_keys(t.keys()),
        }
    }

    /// A placed order of 2 × 10.00 EUR for a new customer.
    async fn placed_order(&self) -> String {
        let user = Uuid::new_v4();
        let c = &self.commands;
        exec(
            &c.users,
            &user.to_string(),
            UserCommand::Register {
                user_id: user,
                email: Personal::Clear(
                    Email::parse(&format!("{user}@example.com")).expect("email"),
                ),
                name: Personal::Clear(PersonName::parse("name", "Saga").expect("name")),
                at: Utc::now(),
                identity: None,
                locale: domain::Locale::default(),
                marketing_consent: false,
            },
        )
        .await;
        let order = Uuid::new_v4();
        let oid = order.to_string();
        let eur = Currency::parse("EUR").expect("EUR");
        exec(
            &c.orders,
            &oid,
            OrderCommand::Create {
                order_id: order,
                customer: CustomerFacts {
                    id: user,
                    active: true,
                },
                currency: eur,
                at: Utc::now(),
            },
        )
        .await;
        let product = ProductFacts {
            sku: Sku::parse("SAGA-1").expect("sku"),
            name: ProductName::parse("name", "Saga tee").expect("name"),
            unit_price: Money {
                amount_minor: 1000,
                currency: eur,
            },
            retired: false,
            version: 1,
        };
        exec(
            &c.orders,
            &oid,
            OrderCommand::AddItem {
                product,
                quantity: 2,
                at: Utc::now(),
            },
        )
        .await;
        exec(&c.orders, &oid, OrderCommand::Place { at: Utc::now() }).await;
        oid
    }

    async fn order_status(&self, id: &str) -> OrderStatus {
        self.commands
            .orders
            .load(id)
            .await
            .expect("load")
            .aggregate()
            .status
    }

    /// Events of `order_id`'s stream.
    async fn story(&self, aggregate: &str, id: &str) -> Vec<eventlog::StoredEvent> {
        self.log.stream(aggregate, id).await.expect("stream")
    }

    /// Payments of an order, from the store (every committed event: the
    /// safe horizon is cluster-wide, so another test's open transaction
    /// would hide some).
    async fn payments(&self, order_id: &str) -> Vec<String> {
        let all = self
            .log
            .read_settled_from(eventlog::Cursor::START, 100_000)
            .await
            .expect("read");
        all.iter()
            .filter(|e| {
                e.event_type == "PaymentInitiated"
                    && e.payload["PaymentInitiated"]["order_id"] == order_id
            })
            .map(|e| e.aggregate_id.clone())
            .collect()
    }
}

/// Runs saga (and simulator) steps until `done` holds or 20 s pass.
async fn settle(saga: &Saga, simulator: Option<&Simulator>, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = simulator {
            s.step().await.expect("simulator step");
        }
        saga.step().await.expect("saga step");
        saga.fire_deadlines().await.expect("deadlines");
        if done().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the saga did not settle"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn saga(w: &World, clock: Arc<dyn Clock>, max_retries: u32) -> Saga {
    Saga::new(
        w.commands.clone(),
        w.log.clone(),
        w.db.clone(),
        clock,
        SagaConfig {
            deadline: chrono::Duration::minutes(15),
            max_retries,
        },
    )
}

fn simulator(w: &World, failure_rate: f64) -> Simulator {
    Simulator::new(
        w.commands.clone(),
        w.log.clone(),
        w.db.clone(),
        SimulatorConfig {
            delay: Duration::ZERO,
            failure_rate,
            failure_reason: "card_declined".into(),
        },
    )
}

async fn happy_path_and_redelivery(t: &TestDatabase) {
    let w = World::new(t).await;
    let order = w.placed_order().await;
    let saga = saga(&w, Arc::new(shopstream::saga::SystemClock), 1);
    let sim = simulator(&w, 0.0);
    settle(&saga, Some(&sim), async || {
        w.order_status(&order).await == OrderStatus::Paid
    })
    .await;
    let story = w.story("Order", &order).await;
    let paid = story.last().expect("events");
    assert_eq!(paid.event_type, "OrderPaid");
    assert_eq!(paid.metadata["actor"], "service:order_payment_saga");
    let captured = w
        .log
        .read_settled_from(eventlog::Cursor::START, 1000)
        .await
        .expect("read")
        .into_iter()
        .find(|e| e.event_type == "PaymentCaptured")
        .expect("captured");
    assert_eq!(
        paid.metadata["causation_id"],
        captured.event_id.to_string(),
        "the order was paid because of the capture"
    );

    // Redelivery: replay the whole log through the saga; nothing new is issued.
    let head = w.log.head().await.expect("head");
    eventlog::sqlx::query("UPDATE saga_checkpoints SET cursor_txid = '0', cursor_position = 0")
        .execute(match &t.db {
            eventlog::Database::Sqlite(p) => p,
            eventlog::Database::Postgres(_) => panic!("sqlite only"),
        })
        .await
        .map(|_| ())
        .ok();
    while saga.step().await.expect("step") > 0 {}
    assert_eq!(
        w.log.head().await.expect("head"),
        head,
        "a redelivered event issued a command again"
    );
    assert_eq!(w.payments(&order).await.len(), 1);
}

async fn failed_payment_cancels_after_retries(t: &TestDatabase) {
    let w = World::new(t).await;
    let order = w.placed_order().await;
    let saga = saga(&w, Arc::new(shopstream::saga::SystemClock), 1);
    let sim = simulator(&w, 1.0);
    settle(&saga, Some(&sim), async || {
        w.order_status(&order).await == OrderStatus::Cancelled
    })
    .await;
    assert_eq!(w.payments(&order).await.len(), 2, "one retry, then cancel");
    let cancelled = w.story("Order", &order).await.pop().expect("events");
    assert_eq!(
        cancelled.payload["OrderCancelled"]["reason"],
        "payment_failed"
    );
}

async fn cancel_after_capture_refunds(t: &TestDatabase) {
    let w = World::new(t).await;
    let order = w.placed_order().await;
    let saga = saga(&w, Arc::new(shopstream::saga::SystemClock), 0);
    let sim = simulator(&w, 0.0);
    settle(&saga, Some(&sim), async || {
        w.order_status(&order).await == OrderStatus::Paid
    })
    .await;
    exec(
        &w.commands.orders,
        &order,
        OrderCommand::Cancel {
            reason: Reason::parse("reason", "changed mind").expect("reason"),
            at: Utc::now(),
        },
    )
    .await;
    let payment = w.payments(&order).await.pop().expect("payment");
    settle(&saga, None, async || {
        let p = w.commands.payments.load(&payment).await.expect("load");
        p.aggregate().refunded_minor == 2000
    })
    .await;
    // Exactly one refund, however often the saga runs.
    for _ in 0..3 {
        saga.step().await.expect("step");
    }
    let refunds = w
        .story("Payment", &payment)
        .await
        .iter()
        .filter(|e| e.event_type == "PaymentRefunded")
        .count();
    assert_eq!(refunds, 1);
}

async fn deadline_fails_the_payment_and_cancels(t: &TestDatabase) {
    let w = World::new(t).await;
    let order = w.placed_order().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let saga = saga(&w, clock.clone(), 3);
    settle(&saga, None, async || !w.payments(&order).await.is_empty()).await;
    let payment = w.payments(&order).await.pop().expect("payment");
    // Authorized, never captured.
    exec(
        &w.commands.payments,
        &payment,
        PaymentCommand::Authorize {
            amount_minor: 2000,
            at: Utc::now(),
        },
    )
    .await;
    for _ in 0..3 {
        saga.step().await.expect("step");
        assert_eq!(
            saga.fire_deadlines().await.expect("deadlines"),
            0,
            "not due yet"
        );
    }
    clock.advance(chrono::Duration::minutes(16));
    settle(&saga, None, async || {
        w.order_status(&order).await == OrderStatus::Cancelled
    })
    .await;
    let p = w.commands.payments.load(&payment).await.expect("load");
    assert_eq!(p.aggregate().status, PaymentStatus::Failed);
    let failed = w.story("Payment", &payment).await.pop().expect("events");
    assert_eq!(failed.payload["PaymentFailed"]["reason"], "timed_out");
    assert_eq!(
        w.payments(&order).await.len(),
        1,
        "a timeout is not retried"
    );
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let t = eventlog::testing::TestDatabase::postgres().await;
                super::$name(&t).await;
                t.drop_database().await;
            }
        )* }
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let t = eventlog::testing::TestDatabase::sqlite().await;
                super::$name(&t).await;
            }
        )* }
    };
}

both_backends!(
    failed_payment_cancels_after_retries,
    cancel_after_capture_refunds,
    deadline_fails_the_payment_and_cancels
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_happy_path_and_redelivery() {
    let t = TestDatabase::sqlite().await;
    happy_path_and_redelivery(&t).await;
}

/// `shopstream saga` (with the simulated provider) killed with SIGKILL at
/// random moments while 200 orders are placed concurrently: every order
/// ends in exactly one terminal state, no order is paid twice, no payment is
/// refunded twice, none is left waiting past its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_survives_kill_9_during_200_concurrent_orders() {
    use rand::Rng;
    use std::process::{Command, Stdio};

    let t = TestDatabase::postgres().await;
    let w = Arc::new(World::new(&t).await);
    let data = tempfile::tempdir().expect("tempdir");
    eventlog::testing::install_keys(data.path());
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_shopstream"))
            .args([
                "saga",
                "--simulate-payments",
                "--simulated-failure-rate",
                "0.3",
                "--payment-deadline-seconds",
                "3",
            ])
            .arg("--database-url")
            .arg(&t.url)
            .arg("--data-dir")
            .arg(data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn saga")
    };
    let mut writers = Vec::new();
    for _ in 0..8 {
        let w = w.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..25 {
                ids.push(w.placed_order().await);
            }
            ids
        }));
    }
    let mut rng = rand::thread_rng();
    for _ in 0..10 {
        let mut child = start();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..600))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    let mut orders = Vec::new();
    for writer in writers {
        orders.extend(writer.await.expect("writer"));
    }
    assert_eq!(orders.len(), 200);

    let mut child = start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut waiting = 0;
        for o in &orders {
            if !matches!(
                w.order_status(o).await,
                OrderStatus::Paid | OrderStatus::Cancelled
            ) {
                waiting += 1;
            }
        }
        if waiting == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{waiting} orders still waiting"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    let all = w
        .log
        .read_settled_from(eventlog::Cursor::START, 1_000_000)
        .await
        .expect("read");
    for o in &orders {
        let terminal = all
            .iter()
            .filter(|e| {
                &e.aggregate_id == o
                    && (e.event_type == "OrderPaid" || e.event_type == "OrderCancelled")
            })
            .count();
        assert_eq!(terminal, 1, "order {o} has {terminal} terminal events");
        let payments: Vec<&str> = all
            .iter()
            .filter(|e| {
                e.event_type == "PaymentInitiated"
                    && e.payload["PaymentInitiated"]["order_id"] == o.as_str()
            })
            .map(|e| e.aggregate_id.as_str())
            .collect();
        let captured = all
            .iter()
            .filter(|e| {
                e.event_type == "PaymentCaptured" && payments.contains(&e.aggregate_id.as_str())
            })
            .count();
        assert!(captured <= 1, "order {o} was paid {captured} times");
        if w.order_status(o).await == OrderStatus::Paid {
            assert_eq!(captured, 1);
        }
        for p in &payments {
            let refunds = all
                .iter()
                .filter(|e| e.event_type == "PaymentRefunded" && e.aggregate_id == *p)
                .count();
            assert!(refunds <= 1, "payment {p} refunded {refunds} times");
        }
    }
    w.db.close().await;
    t.drop_database().await;
}
