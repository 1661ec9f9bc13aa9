//! Opening what was sealed: the data keys of a batch loaded in one query,
//! then each user event's sealed fields brought into the clear (or marked
//! forgotten when the key is gone).

use std::borrow::Cow;
use std::collections::BTreeSet;

use domain::user::UserEvent;
use domain::{Event, Personal, UndecodableEvent};
use serde::de::DeserializeOwned;

use super::cipher::DataKey;
use super::{Cached, Keyring};
use crate::db::on_pool;
use crate::{StoreError, StoredEvent};

/// Keys per lookup statement.
const LOOKUP_CHUNK: usize = 500;

/// Whether `e` carries a sealed value.
fn sealed(e: &UserEvent) -> bool {
    match e {
        UserEvent::Registered { email, name, .. } => email.is_sealed() || name.is_sealed(),
        UserEvent::NameChanged { name, .. } => name.is_sealed(),
        UserEvent::ShippingAddressChanged {
            shipping_address, ..
        } => shipping_address.is_sealed(),
        _ => false,
    }
}

fn open<T: DeserializeOwned + Clone>(
    key: Option<&DataKey>,
    subject: &str,
    field: &str,
    value: &Personal<T>,
) -> Result<Personal<T>, StoreError> {
    let (Personal::Sealed(sealed), Some(key)) = (value, key) else {
        return Ok(match value {
            Personal::Sealed(_) => Personal::Forgotten,
            other => other.clone(),
        });
    };
    let plain = key.open(subject, field, &sealed.0)?;
    serde_json::from_slice(&plain)
        .map(Personal::Clear)
        .map_err(|e| StoreError::Corrupt(format!("{field} of {subject}: {e}")))
}

/// `e` with its sealed fields opened with `key` (forgotten without one).
fn opened(key: Option<&DataKey>, subject: &str, e: &UserEvent) -> Result<UserEvent, StoreError> {
    Ok(match e {
        UserEvent::Registered {
            user_id,
            email,
            name,
            at,
            locale,
            marketing_consent,
        } => UserEvent::Registered {
            user_id: *user_id,
            email: open(key, subject, "email", email)?,
            name: open(key, subject, "name", name)?,
            at: *at,
            locale: locale.clone(),
            marketing_consent: *marketing_consent,
        },
        UserEvent::NameChanged { name, at } => UserEvent::NameChanged {
            name: open(key, subject, "name", name)?,
            at: *at,
        },
        UserEvent::ShippingAddressChanged {
            shipping_address,
            at,
        } => UserEvent::ShippingAddressChanged {
            shipping_address: open(key, subject, "shipping_address", shipping_address)?,
            at: *at,
        },
        other => other.clone(),
    })
}

impl Keyring {
    /// Loads the data keys of `subjects` that the cache lacks, in as few
    /// statements as it takes; a subject without a key counts as forgotten.
    pub(crate) async fn load_keys(&self, subjects: &[String]) -> Result<(), StoreError> {
        let missing: Vec<&String> = subjects
            .iter()
            .filter(|s| self.cached(s).is_none())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in missing.chunks(LOOKUP_CHUNK) {
            let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT subject, master_key, wrapped FROM data_keys WHERE subject IN ({})",
                params.join(", ")
            );
            let rows: Vec<(String, Option<String>, Option<String>)> =
                on_pool!(&self.inner.db, |p| {
                    let mut q = sqlx::query_as(&sql);
                    for s in chunk {
                        q = q.bind(s.as_str());
                    }
                    q.fetch_all(p).await?
                });
            for subject in chunk {
                let key: Cached = match rows.iter().find(|r| &r.0 == *subject) {
                    Some((_, Some(master), Some(wrapped))) => {
                        Some(self.unwrap(subject, master, wrapped)?)
                    }
                    _ => None,
                };
                self.remember(subject, key);
            }
        }
        Ok(())
    }

    /// `events` with every sealed personal value opened with its owner's
    /// key (`Personal::Clear`), or `Personal::Forgotten` where the key is
    /// gone; events without sealed values are passed through as they are.
    /// A value that does not open (altered bytes, a wrong key) makes its
    /// event undecodable: a poison event for whoever folds it.
    ///
    /// # Errors
    /// Database errors, and a data key wrapped by a master key this
    /// process does not hold.
    pub async fn reveal_events<'a>(
        &self,
        events: &[&'a StoredEvent],
    ) -> Result<Vec<Cow<'a, StoredEvent>>, StoreError> {
        let user_event = |e: &StoredEvent| match &e.event {
            Ok(Event::User(u)) => Some(u.clone()),
            _ => None,
        };
        let subjects: Vec<String> = events
            .iter()
            .filter(|e| user_event(e).is_some_and(|u| sealed(&u)))
            .map(|e| e.aggregate_id.clone())
            .collect();
        self.load_keys(&subjects).await?;
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            match user_event(e) {
                Some(UserEvent::Forgotten { .. }) => {
                    // Whatever another process cached, the key is gone.
                    self.remember(&e.aggregate_id, None);
                    out.push(Cow::Borrowed(*e));
                }
                Some(u) if sealed(&u) => {
                    let key = self.cached(&e.aggregate_id).flatten();
                    let key = key.map(|b| DataKey::new(&b));
                    let mut revealed = (*e).clone();
                    revealed.event = match opened(key.as_ref(), &e.aggregate_id, &u) {
                        Ok(u) => Ok(Event::User(u)),
                        Err(err) => Err(UndecodableEvent::Payload(err.to_string())),
                    };
                    out.push(Cow::Owned(revealed));
                }
                _ => out.push(Cow::Borrowed(*e)),
            }
        }
        Ok(out)
    }
}
