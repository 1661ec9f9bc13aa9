//! `shopstream seed`: realistic, deterministic shop data — customers, a
//! catalog with long-tail popularity, orders of 1–8 items, payments with a
//! share of failures and refunds, spread over a date range so analytics have
//! shape.
//!
//! This is the documented bulk path: events are the domain's own types
//! (`UserEvent`, `OrderEvent`, …), serialized exactly as the command path
//! serializes them, and written in large multi-row inserts with their
//! recorded times set to the simulated moment (that is what lets a year of
//! activity be seeded in seconds). Run it on a store you seed, not on one
//! with live traffic; projectors pick the events up like any others.

use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use domain::product::ProductEvent;
use domain::user::UserEvent;
use domain::{
    Carrier, Currency, Email, EventName, Money, PersonName, ProductName, Reason, Sku,
    TrackingNumber,
};
use eventlog::Database;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub customers: usize,
    pub orders: usize,
    pub seed: u64,
    /// Days of history, ending at `end`.
    pub days: u32,
    pub end: NaiveDate,
}

/// What was seeded.
#[derive(Debug, Clone, Copy)]
pub struct SeedReport {
    pub events: usize,
    pub seconds: f64,
}

struct Writer<'a> {
    db: &'a Database,
    rows: Vec<eventlog::ImportedEvent>,
    written: usize,
    /// Wakes tailers in other processes after each batch.
    signal: Option<eventlog::AppendSignal>,
}

impl Writer<'_> {
    fn push<E: EventName + serde::Serialize>(
        &mut self,
        aggregate_type: &'static str,
        id: &str,
        sequence: i64,
        event: &E,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.rows.push(eventlog::ImportedEvent {
            aggregate_type,
            aggregate_id: id.to_string(),
            sequence,
            event_type: event.name(),
            event_version: event.version(),
            payload: serde_json::to_string(event)?,
            metadata: r#"{"seeded":"true"}"#.to_string(),
            recorded_at: at,
        });
        Ok(())
    }

    async fn flush_if_full(&mut self) -> anyhow::Result<()> {
        if self.rows.len() >= eventlog::IMPORT_CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        eventlog::import(self.db, &rows).await?;
        self.written += rows.len();
        if let Some(signal) = &self.signal {
            signal.appended();
        }
        Ok(())
    }
}

fn uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

/// Picks an index with long-tail popularity (weight 1/rank).
fn popular(rng: &mut StdRng, weights: &[f64], total: f64) -> usize {
    let mut x = rng.gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Seeds `db`.
///
/// # Errors
/// When the store refuses the inserts (e.g. it already holds these ids).
pub async fn seed(db: &Database, o: &SeedOptions) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(o.seed);
    let mut w = Writer {
        db,
        rows: Vec::new(),
        written: 0,
        signal: eventlog::AppendSignal::for_database(db),
    };
    let eur = Currency::parse("EUR").map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = o
        .end
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc())
        .ok_or_else(|| anyhow::anyhow!("bad end date"))?
        - Duration::days(i64::from(o.days));
    let span = Duration::days(i64::from(o.days.max(1))).num_seconds();
    let bad = |e: domain::ValidationError| anyhow::anyhow!("{e}");

    // The catalog, created at the start of the range.
    let products = (o.customers / 10).clamp(20, 2000);
    let mut catalog = Vec::with_capacity(products);
    for i in 0..products {
        let sku = Sku::parse(&format!("SKU-{:05}", i + 1)).map_err(bad)?;
        let name = ProductName::parse("name", &format!("Product {}", i + 1)).map_err(bad)?;
        let price = Money {
            amount_minor: rng.gen_range(5..200) * 100 + 99,
            currency: eur,
        };
        let created = ProductEvent::Created {
            sku: sku.clone(),
            name: name.clone(),
            unit_price: price,
            at: start,
        };
        w.push("Product", sku.as_str(), 1, &created, start)?;
        catalog.push((sku, name, price));
    }
    let weights: Vec<f64> = (1..=products).map(|r| 1.0 / (r as f64).powf(1.1)).collect();
    let total_weight: f64 = weights.iter().sum();

    // Customers register over the first part of the range.
    let mut customers = Vec::with_capacity(o.customers);
    for i in 0..o.customers {
        let id = uuid(&mut rng);
        let at = start + Duration::seconds(rng.gen_range(0..span.max(2) / 2));
        let event = UserEvent::Registered {
            user_id: id,
            email: Email::parse(&format!("customer{}.{}@example.com", o.seed, i)).map_err(bad)?,
            name: PersonName::parse("name", &format!("Customer {i}")).map_err(bad)?,
            at,
        };
        w.push("User", &id.to_string(), 1, &event, at)?;
        customers.push((id, at));
        w.flush_if_full().await?;
    }
    anyhow::ensure!(
        !customers.is_empty() || o.orders == 0,
        "orders need customers"
    );

    for _ in 0..o.orders {
        let (customer, registered) = customers[rng.gen_range(0..customers.len())];
        let left = (start + Duration::seconds(span) - registered)
            .num_seconds()
            .max(60);
        let mut t = registered + Duration::seconds(rng.gen_range(60..=left));
        let mut step = |rng: &mut StdRng| {
            t += Duration::seconds(rng.gen_range(30..1800));
            t
        };
        let order_id = uuid(&mut rng);
        let oid = order_id.to_string();
        let mut seq = 0;
        let mut push_order = |w: &mut Writer<'_>, e: &OrderEvent, at| {
            seq += 1;
            w.push("Order", &oid, seq, e, at)
        };
        let at = step(&mut rng);
        push_order(
            &mut w,
            &OrderEvent::Created {
                order_id,
                customer_id: customer,
                currency: eur,
                at,
            },
            at,
        )?;
        let lines = rng.gen_range(1..=8usize);
        let mut chosen: Vec<usize> = Vec::new();
        let mut total = 0i64;
        let mut count = 0u32;
        while chosen.len() < lines.min(products) {
            let i = popular(&mut rng, &weights, total_weight);
            if chosen.contains(&i) {
                continue;
            }
            chosen.push(i);
            let (sku, name, price) = catalog[i].clone();
            let quantity = if rng.gen_bool(0.8) {
                1
            } else {
                rng.gen_range(2..=5)
            };
            total += price.amount_minor * i64::from(quantity);
            count += quantity;
            let at = step(&mut rng);
            push_order(
                &mut w,
                &OrderEvent::ItemAdded {
                    sku,
                    name,
                    unit_price: price,
                    quantity,
                    at,
                },
                at,
            )?;
        }
        if rng.gen_bool(0.06) {
            let at = step(&mut rng);
            push_order(
                &mut w,
                &OrderEvent::Cancelled {
                    reason: Reason::parse("reason", "changed_mind").map_err(bad)?,
                    at,
                },
                at,
            )?;
            w.flush_if_full().await?;
            continue;
        }
        let amount = Money {
            amount_minor: total,
            currency: eur,
        };
        let at = step(&mut rng);
        push_order(
            &mut w,
            &OrderEvent::Placed {
                total: amount,
                item_count: count,
                at,
            },
            at,
        )?;
        let payment_id = uuid(&mut rng);
        let pid = payment_id.to_string();
        let at = step(&mut rng);
        w.push(
            "Payment",
            &pid,
            1,
            &PaymentEvent::Initiated {
                payment_id,
                order_id,
                customer_id: customer,
                amount,
                at,
            },
            at,
        )?;
        if rng.gen_bool(0.12) {
            let why = if rng.gen_bool(0.6) {
                "card_declined"
            } else {
                "insufficient_funds"
            };
            let at = step(&mut rng);
            w.push(
                "Payment",
                &pid,
                2,
                &PaymentEvent::Failed {
                    reason: Reason::parse("reason", why).map_err(bad)?,
                    at,
                },
                at,
            )?;
            let at = step(&mut rng);
            push_order(
                &mut w,
                &OrderEvent::Cancelled {
                    reason: Reason::parse("reason", "payment_failed").map_err(bad)?,
                    at,
                },
                at,
            )?;
            w.flush_if_full().await?;
            continue;
        }
        let at = step(&mut rng);
        w.push(
            "Payment",
            &pid,
            2,
            &PaymentEvent::Authorized { amount, at },
            at,
        )?;
        let at = step(&mut rng);
        w.push(
            "Payment",
            &pid,
            3,
            &PaymentEvent::Captured { amount, at },
            at,
        )?;
        let at = step(&mut rng);
        push_order(
            &mut w,
            &OrderEvent::Paid {
                payment_id,
                amount,
                at,
            },
            at,
        )?;
        if rng.gen_bool(0.9) {
            let carrier = Carrier::parse("carrier", if rng.gen_bool(0.5) { "DHL" } else { "UPS" })
                .map_err(bad)?;
            let tracking = TrackingNumber::parse(
                "tracking_number",
                &format!("TRK{:010}", rng.gen_range(0..10_000_000_000u64)),
            )
            .map_err(bad)?;
            let at = step(&mut rng);
            push_order(
                &mut w,
                &OrderEvent::Shipped {
                    carrier,
                    tracking_number: tracking,
                    at,
                },
                at,
            )?;
            if rng.gen_bool(0.95) {
                let at = step(&mut rng);
                push_order(&mut w, &OrderEvent::Delivered { at }, at)?;
            }
        }
        if rng.gen_bool(0.05) {
            let part = Money {
                amount_minor: (total / 4).max(1),
                currency: eur,
            };
            let at = step(&mut rng);
            w.push(
                "Payment",
                &pid,
                4,
                &PaymentEvent::Refunded {
                    amount: part,
                    reason: Reason::parse("reason", "damaged").map_err(bad)?,
                    at,
                },
                at,
            )?;
        }
        w.flush_if_full().await?;
    }
    w.flush().await?;
    Ok(SeedReport {
        events: w.written,
        seconds: started.elapsed().as_secs_f64(),
    })
}
