//! The `User` aggregate: registration, profile, (de)activation.
//!
//! E-mail uniqueness spans users, so it cannot be an aggregate rule; the
//! application reserves the address atomically before `Register` is handled.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::domain_event;
use crate::{DomainError, Email, EventName, Locale, PersonName, Personal, ShippingAddress};

/// What a user can be asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// Sign up; with an identity provider's token, linked to the caller's
    /// identity there (`<issuer>#<subject>`).
    /// The personal fields come sealed with the user's data key.
    Register {
        user_id: Uuid,
        email: Personal<Email>,
        name: Personal<PersonName>,
        at: DateTime<Utc>,
        identity: Option<String>,
        /// Preferred language.
        locale: Locale,
        /// Whether the user agreed to marketing messages.
        marketing_consent: bool,
    },
    /// Change the name and/or the shipping address (a PATCH).
    UpdateProfile {
        name: Option<Personal<PersonName>>,
        shipping_address: Option<Personal<ShippingAddress>>,
        at: DateTime<Utc>,
    },
    /// Forget the person (admin): their data key is deleted by the
    /// application; the stream records it and takes no command after.
    Forget { at: DateTime<Utc> },
    /// Freeze the account (admin).
    Deactivate { at: DateTime<Utc> },
    /// Unfreeze the account (admin).
    Reactivate { at: DateTime<Utc> },
}

/// What happened to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    /// Version 2 added `locale` and `marketing_consent` (v1 events are
    /// upcast to `en` and no consent); version 3 seals `email` and `name`.
    #[serde(rename = "UserRegistered")]
    Registered {
        user_id: Uuid,
        email: Personal<Email>,
        name: Personal<PersonName>,
        at: DateTime<Utc>,
        locale: Locale,
        marketing_consent: bool,
    },
    /// Version 2 seals `name`.
    #[serde(rename = "UserNameChanged")]
    NameChanged {
        name: Personal<PersonName>,
        at: DateTime<Utc>,
    },
    /// Version 2 seals `shipping_address`.
    #[serde(rename = "UserShippingAddressChanged")]
    ShippingAddressChanged {
        shipping_address: Personal<ShippingAddress>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "UserDeactivated")]
    Deactivated { at: DateTime<Utc> },
    #[serde(rename = "UserReactivated")]
    Reactivated { at: DateTime<Utc> },
    /// The user signed up with an identity provider's token: tokens of
    /// `identity` (`<issuer>#<subject>`) act as this user.
    #[serde(rename = "UserIdentityLinked")]
    IdentityLinked { identity: String, at: DateTime<Utc> },
    /// The person was forgotten: their data key is gone, so every sealed
    /// value of the stream reads as forgotten from now on.
    #[serde(rename = "UserForgotten")]
    Forgotten { at: DateTime<Utc> },
}

impl EventName for UserEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Registered { .. } => "UserRegistered",
            Self::NameChanged { .. } => "UserNameChanged",
            Self::ShippingAddressChanged { .. } => "UserShippingAddressChanged",
            Self::Deactivated { .. } => "UserDeactivated",
            Self::Reactivated { .. } => "UserReactivated",
            Self::IdentityLinked { .. } => "UserIdentityLinked",
            Self::Forgotten { .. } => "UserForgotten",
        }
    }
}
domain_event!(UserEvent);

/// A user's state, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Set once registered.
    pub id: Option<Uuid>,
    pub email: Option<Personal<Email>>,
    pub name: Option<Personal<PersonName>>,
    pub shipping_address: Option<Personal<ShippingAddress>>,
    pub active: bool,
    /// Forgotten: the personal fields are gone and no command is taken.
    #[serde(default)]
    pub forgotten: bool,
    /// Preferred language (`en` for users registered before it was asked).
    #[serde(default)]
    pub locale: Locale,
    #[serde(default)]
    pub marketing_consent: bool,
    /// The identity provider identity the user signed up with.
    #[serde(default)]
    pub identity: Option<String>,
}

impl User {
    /// Whether the user has registered.
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, DomainError> {
        if !self.exists() && !matches!(command, UserCommand::Register { .. }) {
            return Err(DomainError::conflict(
                "user_not_registered",
                "the user does not exist",
            ));
        }
        if self.forgotten {
            let (rule, message) = match command {
                UserCommand::Forget { .. } => {
                    ("user_already_forgotten", "the user was forgotten already")
                }
                _ => ("user_forgotten", "the user was forgotten"),
            };
            return Err(DomainError::conflict(rule, message));
        }
        match command {
            UserCommand::Register {
                user_id,
                email,
                name,
                at,
                identity,
                locale,
                marketing_consent,
            } => {
                if self.exists() {
                    return Err(DomainError::conflict(
                        "user_already_registered",
                        "this user is already registered",
                    ));
                }
                let mut events = vec![UserEvent::Registered {
                    user_id,
                    email,
                    name,
                    at,
                    locale,
                    marketing_consent,
                }];
                if let Some(identity) = identity.filter(|i| !i.is_empty()) {
                    events.push(UserEvent::IdentityLinked { identity, at });
                }
                Ok(events)
            }
            UserCommand::UpdateProfile {
                name,
                shipping_address,
                at,
            } => self.update_profile(name, shipping_address, at),
            UserCommand::Deactivate { at } => {
                if !self.active {
                    return Err(DomainError::conflict(
                        "user_already_deactivated",
                        "the user is already deactivated",
                    ));
                }
                Ok(vec![UserEvent::Deactivated { at }])
            }
            UserCommand::Reactivate { at } => {
                if self.active {
                    return Err(DomainError::conflict(
                        "user_already_active",
                        "the user is already active",
                    ));
                }
                Ok(vec![UserEvent::Reactivated { at }])
            }
            UserCommand::Forget { at } => Ok(vec![UserEvent::Forgotten { at }]),
        }
    }
}

crate::event::aggregate!(User, "User", UserCommand, UserEvent);

impl User {
    /// The events of a profile change: none for unchanged values, so a
    /// repeated PATCH is a no-op (sealing is deterministic per user and
    /// field, so an unchanged value is an equal ciphertext).
    fn update_profile(
        &self,
        name: Option<Personal<PersonName>>,
        shipping_address: Option<Personal<ShippingAddress>>,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, DomainError> {
        if !self.active {
            return Err(DomainError::conflict(
                "user_deactivated",
                "a deactivated user's profile cannot change",
            ));
        }
        let mut events = Vec::new();
        if let Some(name) = name.filter(|n| Some(n) != self.name.as_ref()) {
            events.push(UserEvent::NameChanged { name, at });
        }
        if let Some(shipping_address) =
            shipping_address.filter(|a| Some(a) != self.shipping_address.as_ref())
        {
            events.push(UserEvent::ShippingAddressChanged {
                shipping_address,
                at,
            });
        }
        Ok(events)
    }
}

impl User {
    /// Folds one event into the state (cqrs-es's `apply`).
    fn evolve(&mut self, event: UserEvent) {
        match event {
            UserEvent::Registered {
                user_id,
                email,
                name,
                locale,
                marketing_consent,
                ..
            } => {
                self.id = Some(user_id);
                self.email = Some(email);
                self.name = Some(name);
                self.locale = locale;
                self.marketing_consent = marketing_consent;
                self.active = true;
            }
            UserEvent::NameChanged { name, .. } => self.name = Some(name),
            UserEvent::ShippingAddressChanged {
                shipping_address, ..
            } => self.shipping_address = Some(shipping_address),
            UserEvent::Deactivated { .. } => self.active = false,
            UserEvent::Reactivated { .. } => self.active = true,
            UserEvent::IdentityLinked { identity, .. } => self.identity = Some(identity),
            UserEvent::Forgotten { .. } => {
                gone(&mut self.email);
                gone(&mut self.name);
                gone(&mut self.shipping_address);
                self.identity = None;
                self.active = false;
                self.forgotten = true;
            }
        }
    }
}

/// A personal field after its owner is forgotten.
fn gone<T>(v: &mut Option<Personal<T>>) {
    if v.is_some() {
        *v = Some(Personal::Forgotten);
    }
}

#[cfg(test)]
mod tests;
