use std::collections::HashMap;

use chrono::Utc;
use domain::product::{ProductCommand, ProductEvent};
use domain::{Currency, Money, Product, ProductName, Sku};
use eventlog::{Committed, Cursor, EventLog, Repository, StoreError, StoredEvent};

/// Creates product `sku` through the repository (one event).
pub async fn create_product(
    repo: &Repository<Product>,
    sku: &str,
) -> Result<Committed, StoreError> {
    let loaded = repo.load(sku).await?;
    let events = repo
        .decide(&loaded, create(sku, 100), &())
        .await
        .expect("valid command");
    repo.commit(loaded, events, HashMap::new(), &[]).await
}

pub fn create(sku: &str, price: i64) -> ProductCommand {
    ProductCommand::Create {
        sku: Sku::parse(sku).expect("sku"),
        name: ProductName::parse("name", "Thing").expect("name"),
        unit_price: eur(price),
        at: Utc::now(),
    }
}

pub fn reprice(price: i64) -> ProductCommand {
    ProductCommand::Update {
        name: None,
        unit_price: Some(eur(price)),
        at: Utc::now(),
    }
}

pub fn eur(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: Currency::parse("EUR").expect("EUR"),
    }
}

pub fn price_of(event: &ProductEvent) -> Option<i64> {
    match event {
        ProductEvent::Repriced { unit_price, .. } | ProductEvent::Created { unit_price, .. } => {
            Some(unit_price.amount_minor)
        }
        _ => None,
    }
}

/// Reads after `after` until `expected` events are visible (or 10 s pass).
///
/// The safe horizon is cluster-wide: a transaction open in any database of
/// the server (another test's) holds it back for a moment, so a read right
/// after a commit may legitimately see nothing yet.
pub async fn read_eventually(log: &EventLog, after: Cursor, expected: usize) -> Vec<StoredEvent> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = log.read_from(after, 1000).await.expect("read");
        if events.len() >= expected || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
