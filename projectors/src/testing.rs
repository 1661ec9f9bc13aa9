//! Random but valid shop activity for tests and benchmarks, run through the
//! command core (crate `commands`: the REST API's path without HTTP), so
//! the events are the ones the platform writes. Behind the `testing` feature.

use auth::{Principal, Role};
use chrono::Utc;
use commands::{CommandContext, Commands, Done};
use domain::order::OrderCommand;
use domain::payment::PaymentCommand;
use domain::{
    Carrier, Currency, Email, Money, PersonName, ProductName, Reason, ShippingAddress, Sku,
    TrackingNumber,
};
use eventlog::Database;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// A seeded generator of shop activity.
pub struct Shop {
    commands: Commands,
    admin: Principal,
    rng: StdRng,
    user_ids: Vec<Uuid>,
    catalog: Vec<Sku>,
    n: u64,
}

fn eur(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: Currency::parse("EUR").expect("EUR"),
    }
}

fn reason(text: &str) -> Reason {
    Reason::parse("reason", text).expect("reason")
}

fn ok(done: Result<Done, commands::CommandError>) -> Done {
    done.expect("a valid command")
}

impl Shop {
    /// A generator appending to `db`, deterministic in its choices for `seed`.
    pub fn new(db: &Database, seed: u64) -> Self {
        Self {
            commands: Commands::new(db, 0, 0, eventlog::testing::keys(db)),
            admin: Principal::new("shop-generator", Role::Admin),
            rng: StdRng::seed_from_u64(seed),
            user_ids: Vec::new(),
            catalog: Vec::new(),
            n: seed * 1_000_000,
        }
    }

    fn next(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    fn ctx() -> CommandContext {
        let id = Uuid::new_v4().to_string();
        CommandContext {
            request_id: id.clone(),
            correlation_id: id,
            ..CommandContext::default()
        }
    }

    /// Creates `products` catalog products.
    pub async fn catalog(&mut self, products: usize) {
        for i in 0..products {
            let sku = Sku::parse(&format!("SKU-{}-{i}", self.next())).expect("sku");
            let name = ProductName::parse("name", &format!("Product {i}")).expect("name");
            let price = eur(self.rng.gen_range(100..10_000));
            let done = self
                .commands
                .create_product(&self.admin, &Self::ctx(), sku.clone(), name, price)
                .await;
            ok(done);
            self.catalog.push(sku);
        }
    }

    /// Registers a customer (sometimes with a profile change).
    pub async fn customer(&mut self) -> Uuid {
        let n = self.next();
        let email = Email::parse(&format!("user{n}@example.com")).expect("email");
        let name = PersonName::parse("name", &format!("User {n}")).expect("name");
        let sign_up = commands::SignUp::new(email, name);
        let done = ok(self.commands.register(&Self::ctx(), sign_up, None).await);
        let id = Uuid::parse_str(&done.id).expect("a user id");
        if self.rng.gen_bool(0.3) {
            let address = ShippingAddress::parse("Main St 1", None, "Berlin", "10115", "DE")
                .expect("address");
            let renamed = PersonName::parse("name", &format!("Renamed {n}")).expect("name");
            let who = Self::customer_principal(id);
            let done = self
                .commands
                .update_profile(&who, &Self::ctx(), id, Some(renamed), Some(address))
                .await;
            ok(done);
        }
        self.user_ids.push(id);
        id
    }

    fn customer_principal(id: Uuid) -> Principal {
        Principal::new(id.to_string(), Role::Customer)
    }

    /// Runs an order command as `who`.
    async fn order_step(&self, who: &Principal, oid: &str, command: OrderCommand) {
        let done = self
            .commands
            .order_command(who, &Self::ctx(), oid, true, || command.clone())
            .await;
        ok(done);
    }

    /// Runs a provider step on payment `pid`.
    async fn payment_step(&self, pid: &str, command: PaymentCommand) {
        let done = self
            .commands
            .payment_step(&self.admin, &Self::ctx(), pid, command)
            .await;
        ok(done);
    }

    /// One order's whole life, with random turns.
    pub async fn order(&mut self) {
        let customer = match self.user_ids.len() {
            0 => self.customer().await,
            n => self.user_ids[self.rng.gen_range(0..n)],
        };
        let buyer = Self::customer_principal(customer);
        let eur = Currency::parse("EUR").expect("EUR");
        let ctx = Self::ctx();
        let created = self.commands.create_order(&buyer, &ctx, customer, eur);
        let oid = ok(created.await).id;
        let lines = self.rng.gen_range(1..=3).min(self.catalog.len());
        let mut picked = self.catalog.clone();
        let mut first = None;
        for _ in 0..lines {
            let sku = picked.swap_remove(self.rng.gen_range(0..picked.len()));
            let quantity = self.rng.gen_range(1..=5);
            let added = self.commands.add_item(&buyer, &ctx, &oid, &sku, quantity);
            ok(added.await);
            first.get_or_insert(sku);
        }
        let at = Utc::now;
        if let (Some(sku), true) = (first, self.rng.gen_bool(0.2)) {
            let change = OrderCommand::ChangeQuantity {
                sku,
                quantity: 7,
                at: at(),
            };
            self.order_step(&buyer, &oid, change).await;
        }
        if self.rng.gen_bool(0.1) {
            let cancel = OrderCommand::Cancel {
                reason: reason("changed mind"),
                at: at(),
            };
            self.order_step(&buyer, &oid, cancel).await;
            return;
        }
        self.order_step(&buyer, &oid, OrderCommand::Place { at: at() })
            .await;
        self.pay(&buyer, &oid).await;
    }

    /// Pays placed order `oid` (or fails to), then ships it, with random turns.
    async fn pay(&mut self, buyer: &Principal, oid: &str) {
        let at = Utc::now;
        let order_id = Uuid::parse_str(oid).expect("an order id");
        let ctx = Self::ctx();
        let initiated = self.commands.initiate_payment(buyer, &ctx, order_id);
        let pid = ok(initiated.await).id;
        if self.rng.gen_bool(0.2) {
            let why = if self.rng.gen_bool(0.5) {
                "card_declined"
            } else {
                "insufficient_funds"
            };
            let fail = PaymentCommand::Fail {
                reason: reason(why),
                at: at(),
            };
            self.payment_step(&pid, fail).await;
            let cancel = OrderCommand::Cancel {
                reason: reason("payment_failed"),
                at: at(),
            };
            self.order_step(&self.admin, oid, cancel).await;
            return;
        }
        let order = self.commands.orders.load(oid).await.expect("load");
        let total = order.aggregate().total().expect("a placed order's total");
        for step in [
            PaymentCommand::Authorize {
                amount_minor: total.amount_minor,
                at: at(),
            },
            PaymentCommand::Capture {
                amount_minor: total.amount_minor,
                at: at(),
            },
        ] {
            self.payment_step(&pid, step).await;
        }
        let payment_id = Uuid::parse_str(&pid).expect("a payment id");
        let paid = self.commands.mark_paid(&self.admin, &ctx, oid, payment_id);
        ok(paid.await);
        if self.rng.gen_bool(0.15) {
            let refund = PaymentCommand::Refund {
                amount_minor: total.amount_minor / 2,
                reason: reason("damaged"),
                at: at(),
            };
            self.payment_step(&pid, refund).await;
        }
        if self.rng.gen_bool(0.1) {
            let cancel = OrderCommand::Cancel {
                reason: reason("customer request"),
                at: at(),
            };
            self.order_step(&self.admin, oid, cancel).await;
            return;
        }
        let ship = OrderCommand::Ship {
            carrier: Carrier::parse("carrier", "DHL").expect("carrier"),
            tracking_number: TrackingNumber::parse("tracking_number", "T1").expect("tracking"),
            at: at(),
        };
        self.order_step(&self.admin, oid, ship).await;
        if self.rng.gen_bool(0.8) {
            self.order_step(&self.admin, oid, OrderCommand::Deliver { at: at() })
                .await;
        }
    }

    /// A batch of activity: customers and orders.
    pub async fn activity(&mut self, customers: usize, orders: usize) {
        if self.catalog.is_empty() {
            self.catalog(6).await;
        }
        for _ in 0..customers {
            self.customer().await;
        }
        for _ in 0..orders {
            self.order().await;
        }
    }
}

/// Rebuilds projection `name` with verification (the rebuilt rows must
/// equal the live ones); panics when the rebuild fails or refuses to swap.
pub async fn rebuild_verified(
    name: &str,
    log: &eventlog::EventLog,
    db: &readmodel::ReadDb,
) -> crate::rebuild::Report {
    let mut progress = |_p: crate::rebuild::Progress| {};
    let options = crate::rebuild::Options::new(true, &mut progress);
    crate::rebuild::rebuild(name, log, db, options)
        .await
        .unwrap_or_else(|e| panic!("verified rebuild of {name}: {e}"))
}
