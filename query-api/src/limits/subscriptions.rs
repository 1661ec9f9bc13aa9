//! Caps on live subscriptions, per WebSocket connection and in total.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextSubscribe};
use async_graphql::{Response, ServerError};
use futures::stream::{BoxStream, StreamExt};

/// Most live subscriptions per WebSocket connection, by default.
pub const DEFAULT_SUBSCRIPTIONS_PER_CONNECTION: usize = 16;

/// Most live subscriptions in the process, by default.
pub const DEFAULT_SUBSCRIPTIONS_TOTAL: usize = 4096;

/// Caps on live subscriptions, per WebSocket connection and in total; a
/// subscription over either cap gets one `TOO_MANY_SUBSCRIPTIONS` error
/// and ends, the others go on.
#[derive(Debug, Clone)]
pub struct SubscriptionLimits {
    per_connection: usize,
    total: usize,
    live: Arc<AtomicUsize>,
}

/// The live subscriptions of one WebSocket connection (connection data).
#[derive(Debug, Clone, Default)]
pub struct ConnectionSubscriptions(Arc<AtomicUsize>);

impl SubscriptionLimits {
    /// Caps of `per_connection` and `total`.
    pub fn new(per_connection: usize, total: usize) -> Self {
        Self {
            per_connection,
            total,
            live: Arc::default(),
        }
    }

    /// Live subscriptions in the process.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// Takes one slot of `counter` unless it is at `cap`.
fn take_slot(counter: &Arc<AtomicUsize>, cap: usize) -> Option<Slot> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < cap).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(counter.clone()))
}

/// A taken slot, given back when the subscription's stream is dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ExtensionFactory for SubscriptionLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for SubscriptionLimits {
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let connection = ctx
            .data_opt::<ConnectionSubscriptions>()
            .map(|c| c.0.clone());
        let own = match connection {
            Some(c) => match take_slot(&c, self.per_connection) {
                Some(slot) => Some(slot),
                None => {
                    return refused(format!(
                        "this connection already has {} live subscriptions (per-connection limit)",
                        self.per_connection
                    ))
                }
            },
            None => None,
        };
        let Some(global) = take_slot(&self.live, self.total) else {
            return refused(format!(
                "the server already has {} live subscriptions (subscription limit)",
                self.total
            ));
        };
        let slots = (own, global);
        next.run(ctx, stream)
            .map(move |r| {
                let _held = &slots;
                r
            })
            .boxed()
    }
}

fn refused<'s>(message: String) -> BoxStream<'s, Response> {
    let mut err = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", "TOO_MANY_SUBSCRIPTIONS");
    err.extensions = Some(ext);
    futures::stream::once(async move { Response::from_errors(vec![err]) }).boxed()
}
