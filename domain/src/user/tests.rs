use cqrs_es::test::TestFramework;

use super::*;
use crate::test_support::{expect_rule, t0};

fn registered() -> UserEvent {
    UserEvent::Registered {
        user_id: Uuid::nil(),
        email: Personal::Clear(Email::parse("ada@example.com").unwrap()),
        name: Personal::Clear(PersonName::parse("name", "Ada").unwrap()),
        at: t0(),
        locale: Locale::default(),
        marketing_consent: false,
    }
}

fn address() -> Personal<ShippingAddress> {
    Personal::Clear(ShippingAddress::parse("Main St 1", None, "Berlin", "10115", "DE").unwrap())
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
    let name = Personal::Clear(PersonName::parse("name", "Ada L.").unwrap());
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
            name: Some(Personal::Clear(PersonName::parse("name", "Ada").unwrap())),
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

#[test]
fn forgetting_blanks_the_personal_fields_and_ends_the_stream() {
    TestFramework::<User>::with(())
        .given(vec![registered()])
        .when(UserCommand::Forget { at: t0() })
        .then_expect_events(vec![UserEvent::Forgotten { at: t0() }]);
    let mut user = User::default();
    for e in [
        registered(),
        UserEvent::ShippingAddressChanged {
            shipping_address: address(),
            at: t0(),
        },
        UserEvent::IdentityLinked {
            identity: "https://id.example#1".into(),
            at: t0(),
        },
        UserEvent::Forgotten { at: t0() },
    ] {
        user.evolve(e);
    }
    assert!(user.forgotten && !user.active);
    assert_eq!(user.email, Some(Personal::Forgotten));
    assert_eq!(user.name, Some(Personal::Forgotten));
    assert_eq!(user.shipping_address, Some(Personal::Forgotten));
    assert_eq!(user.identity, None);
    let forgotten = vec![registered(), UserEvent::Forgotten { at: t0() }];
    expect_rule::<User>(
        forgotten.clone(),
        UserCommand::Forget { at: t0() },
        "user_already_forgotten",
    );
    for command in [
        UserCommand::Reactivate { at: t0() },
        UserCommand::Deactivate { at: t0() },
        UserCommand::UpdateProfile {
            name: None,
            shipping_address: Some(address()),
            at: t0(),
        },
    ] {
        expect_rule::<User>(forgotten.clone(), command, "user_forgotten");
    }
}

#[test]
fn a_deactivated_user_can_be_forgotten() {
    TestFramework::<User>::with(())
        .given(vec![registered(), UserEvent::Deactivated { at: t0() }])
        .when(UserCommand::Forget { at: t0() })
        .then_expect_events(vec![UserEvent::Forgotten { at: t0() }]);
}
