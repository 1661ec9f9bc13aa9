//! Random but valid shop activity for tests and benchmarks, appended
//! through the domain's aggregates and the event store (the command path
//! without HTTP). Behind the `testing` feature.

use std::collections::HashMap;

use chrono::Utc;
use cqrs_es::Aggregate;
use domain::order::{CustomerFacts, OrderCommand, OrderStatus, PaymentFacts, ProductFacts};
use domain::payment::{OrderFacts, PaymentCommand};
use domain::product::ProductCommand;
use domain::user::UserCommand;
use domain::{
    Currency, Email, Money, Order, Payment, PersonName, Product, ProductName, Reason,
    ShippingAddress, Sku, User,
};
use eventlog::{Database, Repository};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// A seeded generator of shop activity.
pub struct Shop {
    users: Repository<User>,
    products: Repository<Product>,
    orders: Repository<Order>,
    payments: Repository<Payment>,
    rng: StdRng,
    user_ids: Vec<Uuid>,
    catalog: Vec<(Sku, ProductName, Money)>,
    n: u64,
}

async fn exec<A>(repo: &Repository<A>, id: &str, command: A::Command) -> A
where
    A: Aggregate<Error = domain::DomainError, Services = ()> + Clone + Send + Sync + 'static,
{
    let loaded = repo.load(id).await.expect("load");
    let events = repo
        .decide(&loaded, command, &())
        .await
        .expect("a valid command");
    repo.commit(loaded, events, HashMap::new(), &[])
        .await
        .expect("commit");
    repo.load(id).await.expect("reload").aggregate().clone()
}

fn eur(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: Currency::parse("EUR").expect("EUR"),
    }
}

impl Shop {
    /// A generator appending to `db`, deterministic in its choices for `seed`.
    pub fn new(db: &Database, seed: u64) -> Self {
        Self {
            users: Repository::new(db, 0, 0),
            products: Repository::new(db, 0, 0),
            orders: Repository::new(db, 0, 0),
            payments: Repository::new(db, 0, 0),
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

    /// Creates `products` catalog products.
    pub async fn catalog(&mut self, products: usize) {
        for i in 0..products {
            let sku = Sku::parse(&format!("SKU-{}-{i}", self.next())).expect("sku");
            let name = ProductName::parse("name", &format!("Product {i}")).expect("name");
            let price = eur(self.rng.gen_range(100..10_000));
            exec(
                &self.products,
                sku.as_str(),
                ProductCommand::Create {
                    sku: sku.clone(),
                    name: name.clone(),
                    unit_price: price,
                    at: Utc::now(),
                },
            )
            .await;
            self.catalog.push((sku, name, price));
        }
    }

    /// Registers a customer (sometimes with a profile change).
    pub async fn customer(&mut self) -> Uuid {
        let id = Uuid::new_v4();
        let n = self.next();
        exec(
            &self.users,
            &id.to_string(),
            UserCommand::Register {
                user_id: id,
                email: Email::parse(&format!("user{n}@example.com")).expect("email"),
                name: PersonName::parse("name", &format!("User {n}")).expect("name"),
                at: Utc::now(),
            },
        )
        .await;
        if self.rng.gen_bool(0.3) {
            let address = ShippingAddress::parse("Main St 1", None, "Berlin", "10115", "DE")
                .expect("address");
            exec(
                &self.users,
                &id.to_string(),
                UserCommand::UpdateProfile {
                    name: Some(PersonName::parse("name", &format!("Renamed {n}")).expect("name")),
                    shipping_address: Some(address),
                    at: Utc::now(),
                },
            )
            .await;
        }
        self.user_ids.push(id);
        id
    }

    /// One order's whole life, with random turns.
    pub async fn order(&mut self) {
        let customer = match self.user_ids.len() {
            0 => self.customer().await,
            n => self.user_ids[self.rng.gen_range(0..n)],
        };
        let order_id = Uuid::new_v4();
        let oid = order_id.to_string();
        let at = Utc::now;
        exec(
            &self.orders,
            &oid,
            OrderCommand::Create {
                order_id,
                customer: CustomerFacts {
                    id: customer,
                    active: true,
                },
                currency: Currency::parse("EUR").expect("EUR"),
                at: at(),
            },
        )
        .await;
        let lines = self.rng.gen_range(1..=3).min(self.catalog.len());
        let mut picked = self.catalog.clone();
        for _ in 0..lines {
            let i = self.rng.gen_range(0..picked.len());
            let (sku, name, unit_price) = picked.swap_remove(i);
            let quantity = self.rng.gen_range(1..=5);
            exec(
                &self.orders,
                &oid,
                OrderCommand::AddItem {
                    product: ProductFacts {
                        sku,
                        name,
                        unit_price,
                        retired: false,
                    },
                    quantity,
                    at: at(),
                },
            )
            .await;
        }
        let order = self
            .orders
            .load(&oid)
            .await
            .expect("load")
            .aggregate()
            .clone();
        if self.rng.gen_bool(0.2) {
            let sku = order.lines[0].sku.clone();
            exec(
                &self.orders,
                &oid,
                OrderCommand::ChangeQuantity {
                    sku,
                    quantity: 7,
                    at: at(),
                },
            )
            .await;
        }
        if self.rng.gen_bool(0.1) {
            exec(
                &self.orders,
                &oid,
                OrderCommand::Cancel {
                    reason: Reason::parse("reason", "changed mind").expect("reason"),
                    at: at(),
                },
            )
            .await;
            return;
        }
        let order = exec(&self.orders, &oid, OrderCommand::Place { at: at() }).await;
        let total = order.total().expect("total");
        let payment_id = Uuid::new_v4();
        let pid = payment_id.to_string();
        exec(
            &self.payments,
            &pid,
            PaymentCommand::Initiate {
                payment_id,
                order: OrderFacts {
                    order_id,
                    customer_id: customer,
                    status: OrderStatus::Placed,
                    total,
                },
                at: at(),
            },
        )
        .await;
        if self.rng.gen_bool(0.2) {
            let reason = if self.rng.gen_bool(0.5) {
                "card_declined"
            } else {
                "insufficient_funds"
            };
            exec(
                &self.payments,
                &pid,
                PaymentCommand::Fail {
                    reason: Reason::parse("reason", reason).expect("reason"),
                    at: at(),
                },
            )
            .await;
            exec(
                &self.orders,
                &oid,
                OrderCommand::Cancel {
                    reason: Reason::parse("reason", "payment_failed").expect("reason"),
                    at: at(),
                },
            )
            .await;
            return;
        }
        exec(
            &self.payments,
            &pid,
            PaymentCommand::Authorize {
                amount_minor: total.amount_minor,
                at: at(),
            },
        )
        .await;
        let payment = exec(
            &self.payments,
            &pid,
            PaymentCommand::Capture {
                amount_minor: total.amount_minor,
                at: at(),
            },
        )
        .await;
        exec(
            &self.orders,
            &oid,
            OrderCommand::MarkPaid {
                payment: PaymentFacts {
                    payment_id,
                    order_id,
                    captured: payment.captured(),
                    refunded_minor: 0,
                },
                at: at(),
            },
        )
        .await;
        if self.rng.gen_bool(0.15) {
            exec(
                &self.payments,
                &pid,
                PaymentCommand::Refund {
                    amount_minor: total.amount_minor / 2,
                    reason: Reason::parse("reason", "damaged").expect("reason"),
                    at: at(),
                },
            )
            .await;
        }
        if self.rng.gen_bool(0.1) {
            exec(
                &self.orders,
                &oid,
                OrderCommand::Cancel {
                    reason: Reason::parse("reason", "customer request").expect("reason"),
                    at: at(),
                },
            )
            .await;
            return;
        }
        exec(
            &self.orders,
            &oid,
            OrderCommand::Ship {
                carrier: domain::Carrier::parse("carrier", "DHL").expect("carrier"),
                tracking_number: domain::TrackingNumber::parse("tracking_number", "T1")
                    .expect("tracking"),
                at: at(),
            },
        )
        .await;
        if self.rng.gen_bool(0.8) {
            exec(&self.orders, &oid, OrderCommand::Deliver { at: at() }).await;
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
