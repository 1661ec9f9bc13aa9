//! Partition keys: every event of one customer lands in one partition, so
//! a customer's events stay in commit order end to end.

use std::collections::HashMap;

use eventlog::{EventLog, StoredEvent};

use super::RelayError;

/// The customer an event belongs to: users are customers; orders and
/// payments name theirs in their first event; products belong to none.
#[derive(Default)]
pub(super) struct Keys {
    cache: HashMap<(String, String), String>,
}

impl Keys {
    pub(super) async fn customer_of(
        &mut self,
        log: &EventLog,
        event: &StoredEvent,
    ) -> Result<Option<String>, RelayError> {
        match event.aggregate_type.as_str() {
            "User" => Ok(Some(event.aggregate_id.clone())),
            "Order" | "Payment" => {
                let key = (event.aggregate_type.clone(), event.aggregate_id.clone());
                if let Some(c) = self.cache.get(&key) {
                    return Ok(Some(c.clone()));
                }
                let customer = match event.customer_id() {
                    Some(c) => Some(c),
                    None => log
                        .first_of(&event.aggregate_type, &event.aggregate_id)
                        .await?
                        .and_then(|first| first.customer_id()),
                };
                if let Some(c) = &customer {
                    if self.cache.len() > 200_000 {
                        self.cache.clear();
                    }
                    self.cache.insert(key, c.clone());
                }
                Ok(customer)
            }
            _ => Ok(None),
        }
    }
}
