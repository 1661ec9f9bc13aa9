//! The `User` aggregate: registration, profile, (de)activation.
//!
//! E-mail uniqueness spans users, so it cannot be an aggregate rule; the
//! application reserves the address atomically before `Register` is handled.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::domain_event;
use crate::{DomainError, Email, EventName, Locale, PersonName, ShippingAddress};

/// What a user can be asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// Sign up; with an identity provider's token, linked to the caller's
    /// identity there (`<issuer>#<subject>`).
    Register {
        user_id: Uuid,
        email: Email,
        name: PersonName,
        at: DateTime<Utc>,
        identity: Option<String>,
        /// Preferred language.
        locale: Locale,
        /// Whether the user agreed to marketing messages.
        marketing_consent: bool,
    },
    /// Change the name and/or the shipping address (a PATCH).
    UpdateProfile {
        name: Option<PersonName>,
        shipping_address: Option<ShippingAddress>,
        at: DateTime<Utc>,
    },
    /// Freeze the account (admin).
    Deactivate { at: DateTime<Utc> },
    /// Unfreeze the account (admin).
    Reactivate { at: DateTime<Utc> },
}

/// What happened to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    /// Version 2 added `locale` and `marketing_consent` (v1 events are
    /// upcast to `en` and no consent).
    #[serde(rename = "UserRegistered")]
    Registered {
        user_id: Uuid,
        email: Email,
        name: PersonName,
        at: DateTime<Utc>,
        locale: Locale,
        marketing_consent: bool,
    },
    #[serde(rename = "UserNameChanged")]
    NameChanged { name: PersonName, at: DateTime<Utc> },
    #[serde(rename = "UserShippingAddressChanged")]
    ShippingAddressChanged {
        shipping_address: ShippingAddress,
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
        }
    }
}
domain_event!(UserEvent);

/// A user's state, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Set once registered.
    pub id: Option<Uuid>,
    pub email: Option<Email>,
    pub name: Option<PersonName>,
    pub shipping_address: Option<ShippingAddress>,
    pub active: bool,
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
            } => {
                if !self.active {
                    return Err(DomainError::conflict(
                        "user_deactivated",
                        "a deactivated user's profile cannot change",
                    ));
                }
                let mut events = Vec::new();
                // Unchanged values produce no event: a repeated PATCH is a no-op.
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
        }
    }
}

crate::event::aggregate!(User, "User", UserCommand, UserEvent);

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
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::test_support::{expect_rule, t0};

    fn registered() -> UserEvent {
        UserEvent::Registered {
            user_id: Uuid::nil(),
            email: Email::parse("ada@example.com").unwrap(),
            name: PersonName::parse("name", "Ada").unwrap(),
            at: t0(),
            locale: Locale::default(),
            marketing_consent: false,
        }
    }

    fn address() -> ShippingAddress {
        ShippingAddress::parse("Main St 1", None, "Berlin", "10115", "DE").unwrap()
    }

    #[test]
    fn register_records_the_user() {
        let UserEvent::Registered {
            user_id,
            email,
            name,
            at,
            ..
        } = registered()
        else {
            unreachable!()
        };
        TestFramework::<User>::with(())
            .given_no_previous_events()
            .when(UserCommand::Register {
                user_id,
                email,
                name,
                at,
                identity: None,
                locale: Locale::default(),
                marketing_consent: false,
            })
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn register_with_an_identity_links_it() {
        let UserEvent::Registered {
            user_id,
            email,
            name,
            at,
            ..
        } = registered()
        else {
            unreachable!()
        };
        let identity = "https://id.example#2f1c".to_string();
        TestFramework::<User>::with(())
            .given_no_previous_events()
            .when(UserCommand::Register {
                user_id,
                email,
                name,
                at,
                identity: Some(identity.clone()),
                locale: Locale::default(),
                marketing_consent: false,
            })
            .then_expect_events(vec![
                registered(),
                UserEvent::IdentityLinked { identity, at },
            ]);
    }

    #[test]
    fn register_twice_is_rejected() {
        let UserEvent::Registered {
            user_id,
            email,
            name,
            at,
            ..
        } = registered()
        else {
            unreachable!()
        };
        expect_rule::<User>(
            vec![registered()],
            UserCommand::Register {
                user_id,
                email,
                name,
                at,
                identity: None,
                locale: Locale::default(),
                marketing_consent: false,
            },
            "user_already_registered",
        );
    }

    #[test]
    fn commands_on_unknown_user_are_rejected() {
        expect_rule::<User>(
            vec![],
            UserCommand::Deactivate { at: t0() },
            "user_not_registered",
        );
    }

    #[test]
    fn profile_update_emits_only_changes() {
        let name = PersonName::parse("name", "Ada L.").unwrap();
        TestFramework::<User>::with(())
            .given(vec![registered()])
            .when(UserCommand::UpdateProfile {
                name: Some(name.clone()),
                shipping_address: Some(address()),
                at: t0(),
            })
            .then_expect_events(vec![
                UserEvent::NameChanged { name, at: t0() },
                UserEvent::ShippingAddressChanged {
                    shipping_address: address(),
                    at: t0(),
                },
            ]);
        TestFramework::<User>::with(())
            .given(vec![registered()])
            .when(UserCommand::UpdateProfile {
                name: Some(PersonName::parse("name", "Ada").unwrap()),
                shipping_address: None,
                at: t0(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn deactivated_user_cannot_change_profile() {
        expect_rule::<User>(
            vec![registered(), UserEvent::Deactivated { at: t0() }],
            UserCommand::UpdateProfile {
                name: None,
                shipping_address: Some(address()),
                at: t0(),
            },
            "user_deactivated",
        );
    }

    #[test]
    fn deactivate_and_reactivate_toggle() {
        TestFramework::<User>::with(())
            .given(vec![registered()])
            .when(UserCommand::Deactivate { at: t0() })
            .then_expect_events(vec![UserEvent::Deactivated { at: t0() }]);
        expect_rule::<User>(
            vec![registered(), UserEvent::Deactivated { at: t0() }],
            UserCommand::Deactivate { at: t0() },
            "user_already_deactivated",
        );
        TestFramework::<User>::with(())
            .given(vec![registered(), UserEvent::Deactivated { at: t0() }])
            .when(UserCommand::Reactivate { at: t0() })
            .then_expect_events(vec![UserEvent::Reactivated { at: t0() }]);
        expect_rule::<User>(
            vec![registered()],
            UserCommand::Reactivate { at: t0() },
            "user_already_active",
        );
    }

    #[test]
    fn event_names_are_stable() {
        let json = serde_json::to_value(UserEvent::Deactivated { at: t0() }).unwrap();
        assert!(json.get("UserDeactivated").is_some(), "{json}");
        assert_eq!(
            UserEvent::Deactivated { at: t0() }.name(),
            "UserDeactivated"
        );
    }
}
