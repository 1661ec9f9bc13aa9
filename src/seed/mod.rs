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
use domain::product::ProductEvent;
use domain::user::UserEvent;
use domain::{Currency, Email, EventName, Money, PersonName, ProductName, Reason, Sku};
use eventlog::Database;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

mod orders;

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

/// Customers whose data keys are made together.
const KEY_CHUNK: usize = 500;

/// Seeds `db`, sealing the customers' personal data with `keys`.
///
/// # Errors
/// When the store refuses the inserts (e.g. it already holds these ids).
pub async fn seed(
    db: &Database,
    keys: &eventlog::Keyring,
    o: &SeedOptions,
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let start = o
        .end
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc())
        .ok_or_else(|| anyhow::anyhow!("bad end date"))?
        - Duration::days(i64::from(o.days));
    let mut s = Seeder {
        w: Writer {
            db,
            rows: Vec::new(),
            written: 0,
            signal: eventlog::AppendSignal::for_database(db),
        },
        keys,
        rng: StdRng::seed_from_u64(o.seed),
        eur: Currency::parse("EUR").map_err(|e| anyhow::anyhow!("{e}"))?,
        start,
        span: Duration::days(i64::from(o.days.max(1))).num_seconds(),
        catalog: Vec::new(),
        weights: Vec::new(),
        total_weight: 0.0,
        customers: Vec::new(),
    };
    s.catalog((o.customers / 10).clamp(20, 2000))?;
    s.customers(o.customers, o.seed).await?;
    anyhow::ensure!(
        !s.customers.is_empty() || o.orders == 0,
        "orders need customers"
    );
    for _ in 0..o.orders {
        s.order()?;
        s.w.flush_if_full().await?;
    }
    s.w.flush().await?;
    Ok(SeedReport {
        events: s.w.written,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn bad(e: domain::ValidationError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn reason(text: &str) -> anyhow::Result<Reason> {
    Reason::parse("reason", text).map_err(bad)
}

/// The generator's state: the writer, the random source, the range, and
/// what exists so far.
struct Seeder<'a> {
    w: Writer<'a>,
    keys: &'a eventlog::Keyring,
    rng: StdRng,
    eur: Currency,
    start: DateTime<Utc>,
    /// The range, in seconds.
    span: i64,
    catalog: Vec<(Sku, ProductName, Money)>,
    /// Popularity per product (1/rank^1.1), and their sum.
    weights: Vec<f64>,
    total_weight: f64,
    /// Customers and when they registered.
    customers: Vec<(Uuid, DateTime<Utc>)>,
}

impl Seeder<'_> {
    /// The catalog, created at the start of the range.
    fn catalog(&mut self, products: usize) -> anyhow::Result<()> {
        for i in 0..products {
            let sku = Sku::parse(&format!("SKU-{:05}", i + 1)).map_err(bad)?;
            let name = ProductName::parse("name", &format!("Product {}", i + 1)).map_err(bad)?;
            let price = Money {
                amount_minor: self.rng.gen_range(5..200) * 100 + 99,
                currency: self.eur,
            };
            let created = ProductEvent::Created {
                sku: sku.clone(),
                name: name.clone(),
                unit_price: price,
                at: self.start,
            };
            self.w
                .push("Product", sku.as_str(), 1, &created, self.start)?;
            self.catalog.push((sku, name, price));
        }
        self.weights = (1..=products).map(|r| 1.0 / (r as f64).powf(1.1)).collect();
        self.total_weight = self.weights.iter().sum();
        Ok(())
    }

    /// Customers register over the first part of the range.
    async fn customers(&mut self, n: usize, seed: u64) -> anyhow::Result<()> {
        let ids: Vec<Uuid> = (0..n).map(|_| uuid(&mut self.rng)).collect();
        for (chunk, ids) in ids.chunks(KEY_CHUNK).enumerate() {
            // Their data keys, a few statements per chunk.
            self.keys.prepare(ids).await?;
            for (k, id) in ids.iter().enumerate() {
                self.customer(*id, chunk * KEY_CHUNK + k, seed).await?;
            }
        }
        Ok(())
    }

    /// Customer `i`, registering, sealed like a sign-up.
    async fn customer(&mut self, id: Uuid, i: usize, seed: u64) -> anyhow::Result<()> {
        let at = self.start + Duration::seconds(self.rng.gen_range(0..self.span.max(2) / 2));
        let email = Email::parse(&format!("customer{seed}.{i}@example.com")).map_err(bad)?;
        let name = PersonName::parse("name", &format!("Customer {i}")).map_err(bad)?;
        let event = UserEvent::Registered {
            user_id: id,
            email: self.keys.seal(id, "email", email).await?,
            name: self.keys.seal(id, "name", name).await?,
            at,
            locale: domain::Locale::default(),
            marketing_consent: i.is_multiple_of(3),
        };
        self.w.push("User", &id.to_string(), 1, &event, at)?;
        self.customers.push((id, at));
        self.w.flush_if_full().await
    }
}
