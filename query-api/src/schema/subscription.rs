//! Subscriptions (graphql-transport-ws): `orderUpdated(id)` and
//! `customerUpdated(id)`: the current state on subscribing, then a push
//! after every projection commit that changes the row; `orderFeed`: the
//! most recently changed orders, then every order as it changes. Same
//! authorization as the queries.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, Result, Subscription, ID};
use auth::Role;
use futures::stream::{self, Stream, StreamExt};
use readmodel::Wake;

use super::types::{Customer, Order};
use super::{may_read, own_id, viewer};
use crate::error::{internal, not_found};
use crate::store::Store;
use readmodel::models::customer::CustomerRow;
use readmodel::models::orders::OrderRow;

/// What an order subscriber sees change: status, update time, document.
fn order_state(row: &OrderRow) -> (String, String, String) {
    (
        row.status.clone(),
        row.updated_at.clone(),
        row.doc.raw().to_string(),
    )
}

/// What a customer subscriber sees change: status, name, order count, document.
fn customer_state(row: &CustomerRow) -> (String, String, i64, String) {
    (
        row.status.clone(),
        row.name.clone(),
        row.order_count,
        row.doc.raw().to_string(),
    )
}

/// The subscription root.
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// The order, each time the order view changes it.
    async fn order_updated(&self, ctx: &Context<'_>, id: ID) -> Result<impl Stream<Item = Order>> {
        let p = viewer(ctx)?.clone();
        let store = ctx.data::<Store>()?.clone();
        let current = store.order(&id).await.map_err(|e| internal(&e))?;
        let Some(current) = current.filter(|o| may_read(&p, &o.customer_id)) else {
            return Err(not_found("order"));
        };
        let woken = ctx.data::<Wake>()?.subscribe();
        let last = order_state(&current);
        // The current state first, then every change after it.
        let first = stream::once(std::future::ready(Order(Arc::new(current))));
        Ok(first.chain(stream::unfold(
            (store, woken, id.0, last),
            |(store, mut woken, id, last)| async move {
                loop {
                    woken.changed().await.ok()?;
                    let Ok(Some(row)) = store.order(&id).await else {
                        continue;
                    };
                    let now = order_state(&row);
                    if now != last {
                        return Some((Order(Arc::new(row)), (store, woken, id, now)));
                    }
                }
            },
        )))
    }

    /// The customer, each time the customer view changes them.
    async fn customer_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = Customer>> {
        let p = viewer(ctx)?.clone();
        if !may_read(&p, &id) {
            return Err(not_found("customer"));
        }
        let store = ctx.data::<Store>()?.clone();
        let current = store
            .customer(&id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| not_found("customer"))?;
        let woken = ctx.data::<Wake>()?.subscribe();
        let last = customer_state(&current);
        let first = stream::once(std::future::ready(Customer(Arc::new(current))));
        Ok(first.chain(stream::unfold(
            (store, woken, id.0, last),
            |(store, mut woken, id, last)| async move {
                loop {
                    woken.changed().await.ok()?;
                    let Ok(Some(row)) = store.customer(&id).await else {
                        continue;
                    };
                    let now = customer_state(&row);
                    if now != last {
                        return Some((Customer(Arc::new(row)), (store, woken, id, now)));
                    }
                }
            },
        )))
    }

    /// Orders as they change: first the `recent` (0..=100, default 20)
    /// most recently changed, oldest first, then each order whenever a
    /// projection commit changes it. Customers see only their own.
    async fn order_feed(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] recent: i32,
    ) -> Result<impl Stream<Item = Order>> {
        if !(0..=100).contains(&recent) {
            return Err(crate::error::bad_input("recent must be between 0 and 100"));
        }
        let p = viewer(ctx)?.clone();
        let customer = match p.role {
            Role::Customer => Some(own_id(&p).ok_or_else(|| not_found("customer"))?),
            _ => None,
        };
        let store = ctx.data::<Store>()?.clone();
        let woken = ctx.data::<Wake>()?.subscribe();
        // At least one row, to know where "from now on" starts.
        let mut first = store
            .orders_changed_since(customer.as_deref(), None, i64::from(recent.max(1)))
            .await
            .map_err(|e| internal(&e))?;
        let feed = Feed::after(&first);
        if recent == 0 {
            first.clear();
        }
        let first = stream::iter(first.into_iter().map(|r| Order(Arc::new(r))));
        Ok(first.chain(
            stream::unfold(
                (store, woken, customer, feed),
                |(store, mut woken, customer, mut feed)| async move {
                    loop {
                        woken.changed().await.ok()?;
                        let Ok(rows) = store
                            .orders_changed_since(
                                customer.as_deref(),
                                feed.since.as_deref(),
                                FEED_BATCH,
                            )
                            .await
                        else {
                            continue;
                        };
                        let fresh = feed.take(rows);
                        if !fresh.is_empty() {
                            let items = stream::iter(fresh.into_iter().map(|r| Order(Arc::new(r))));
                            return Some((items, (store, woken, customer, feed)));
                        }
                    }
                },
            )
            .flatten(),
        ))
    }
}

/// Most changed orders one commit pushes to a feed.
const FEED_BATCH: i64 = 500;

/// Where a feed is: the last change time it has sent, and what it sent at
/// that time (changes sharing a timestamp arrive in different commits).
struct Feed {
    since: Option<String>,
    sent: HashMap<String, (String, String, String)>,
}

impl Feed {
    fn after(rows: &[OrderRow]) -> Self {
        let mut feed = Self {
            since: None,
            sent: HashMap::new(),
        };
        // No orders yet: `since` stays unset, and every order that appears is new.
        feed.remember(rows);
        feed
    }

    fn remember(&mut self, rows: &[OrderRow]) {
        for row in rows {
            if self.since.as_deref() != Some(row.updated_at.as_str()) {
                self.since = Some(row.updated_at.clone());
                self.sent.clear();
            }
            self.sent.insert(row.order_id.clone(), order_state(row));
        }
    }

    /// The rows not sent yet, remembered as sent.
    fn take(&mut self, rows: Vec<OrderRow>) -> Vec<OrderRow> {
        let fresh: Vec<OrderRow> = rows
            .into_iter()
            .filter(|r| self.sent.get(&r.order_id) != Some(&order_state(r)))
            .collect();
        self.remember(&fresh);
        fresh
    }
}
