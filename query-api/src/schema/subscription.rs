//! Subscriptions (graphql-transport-ws): `orderUpdated(id)` and
//! `customerUpdated(id)`: the current state on subscribing, then a push
//! after every projection commit that changes the row. Same authorization
//! as the queries.

use async_graphql::{Context, Result, Subscription, ID};
use futures::stream::{self, Stream, StreamExt};
use readmodel::Wake;

use super::types::{Customer, Order};
use super::{may_read, viewer};
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
        let first = stream::once(std::future::ready(Order(current)));
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
                        return Some((Order(row), (store, woken, id, now)));
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
        let first = stream::once(std::future::ready(Customer(current)));
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
                        return Some((Customer(row), (store, woken, id, now)));
                    }
                }
            },
        )))
    }
}
