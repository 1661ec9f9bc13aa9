use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::test_support::{eur, expect_rule, t0};

fn order_id() -> Uuid {
    Uuid::from_u128(1)
}
fn customer_id() -> Uuid {
    Uuid::from_u128(2)
}
fn payment_id() -> Uuid {
    Uuid::from_u128(3)
}
fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn created() -> OrderEvent {
    OrderEvent::Created {
        order_id: order_id(),
        customer_id: customer_id(),
        currency: Currency::parse("EUR").unwrap(),
        at: t0(),
    }
}

fn product(s: &str, price: i64) -> ProductFacts {
    ProductFacts {
        sku: sku(s),
        name: ProductName::parse("name", "Tee").unwrap(),
        unit_price: eur(price),
        retired: false,
        version: 1,
    }
}

fn added(s: &str, price: i64, quantity: u32) -> OrderEvent {
    OrderEvent::ItemAdded {
        sku: sku(s),
        name: ProductName::parse("name", "Tee").unwrap(),
        unit_price: eur(price),
        quantity,
        at: t0(),
        catalog_version: Some(1),
    }
}

fn placed(total: i64, item_count: u32) -> OrderEvent {
    OrderEvent::Placed {
        total: eur(total),
        item_count,
        at: t0(),
    }
}

fn paid(total: i64) -> OrderEvent {
    OrderEvent::Paid {
        payment_id: payment_id(),
        amount: eur(total),
        at: t0(),
    }
}

fn shipped() -> OrderEvent {
    OrderEvent::Shipped {
        carrier: Carrier::parse("carrier", "DHL").unwrap(),
        tracking_number: TrackingNumber::parse("tracking_number", "T1").unwrap(),
        at: t0(),
    }
}

fn placed_order() -> Vec<OrderEvent> {
    vec![created(), added("A", 500, 2), placed(1000, 2)]
}

fn captured(amount: i64) -> PaymentFacts {
    PaymentFacts {
        payment_id: payment_id(),
        order_id: order_id(),
        captured: Some(eur(amount)),
        refunded_minor: 0,
    }
}

fn ship() -> OrderCommand {
    OrderCommand::Ship {
        carrier: Carrier::parse("carrier", "DHL").unwrap(),
        tracking_number: TrackingNumber::parse("tracking_number", "T1").unwrap(),
        at: t0(),
    }
}

fn cancel() -> OrderCommand {
    OrderCommand::Cancel {
        reason: Reason::parse("reason", "changed my mind").unwrap(),
        at: t0(),
    }
}

#[test]
fn create_for_active_customer() {
    TestFramework::<Order>::with(())
        .given_no_previous_events()
        .when(OrderCommand::Create {
            order_id: order_id(),
            customer: CustomerFacts {
                id: customer_id(),
                active: true,
            },
            currency: Currency::parse("EUR").unwrap(),
            at: t0(),
        })
        .then_expect_events(vec![created()]);
}

#[test]
fn create_for_inactive_customer_is_rejected() {
    expect_rule::<Order>(
        vec![],
        OrderCommand::Create {
            order_id: order_id(),
            customer: CustomerFacts {
                id: customer_id(),
                active: false,
            },
            currency: Currency::parse("EUR").unwrap(),
            at: t0(),
        },
        "customer_not_active",
    );
}

#[test]
fn add_item_records_catalog_price_and_name() {
    TestFramework::<Order>::with(())
        .given(vec![created()])
        .when(OrderCommand::AddItem {
            product: product("A", 500),
            quantity: 3,
            at: t0(),
        })
        .then_expect_events(vec![added("A", 500, 3)]);
}

#[test]
fn quantity_must_be_1_to_1000() {
    for quantity in [0, 1001] {
        expect_rule::<Order>(
            vec![created()],
            OrderCommand::AddItem {
                product: product("A", 500),
                quantity,
                at: t0(),
            },
            "quantity_out_of_range",
        );
        expect_rule::<Order>(
            vec![created(), added("A", 500, 1)],
            OrderCommand::ChangeQuantity {
                sku: sku("A"),
                quantity,
                at: t0(),
            },
            "quantity_out_of_range",
        );
    }
    TestFramework::<Order>::with(())
        .given(vec![created()])
        .when(OrderCommand::AddItem {
            product: product("A", 500),
            quantity: 1000,
            at: t0(),
        })
        .then_expect_events(vec![added("A", 500, 1000)]);
}

#[test]
fn retired_product_cannot_be_added() {
    let mut p = product("A", 500);
    p.retired = true;
    expect_rule::<Order>(
        vec![created()],
        OrderCommand::AddItem {
            product: p,
            quantity: 1,
            at: t0(),
        },
        "product_retired",
    );
}

#[test]
fn currencies_never_mix_in_an_order() {
    let mut p = product("A", 500);
    p.unit_price.currency = Currency::parse("USD").unwrap();
    expect_rule::<Order>(
        vec![created()],
        OrderCommand::AddItem {
            product: p,
            quantity: 1,
            at: t0(),
        },
        "currency_mismatch",
    );
}

#[test]
fn duplicate_line_is_rejected() {
    expect_rule::<Order>(
        vec![created(), added("A", 500, 1)],
        OrderCommand::AddItem {
            product: product("A", 500),
            quantity: 1,
            at: t0(),
        },
        "item_already_in_order",
    );
}

#[test]
fn line_count_is_bounded() {
    let mut given = vec![created()];
    given.extend((0..MAX_LINES).map(|i| added(&format!("S{i}"), 1, 1)));
    expect_rule::<Order>(
        given,
        OrderCommand::AddItem {
            product: product("LAST", 1),
            quantity: 1,
            at: t0(),
        },
        "too_many_items",
    );
}

#[test]
fn change_and_remove_items() {
    TestFramework::<Order>::with(())
        .given(vec![created(), added("A", 500, 1)])
        .when(OrderCommand::ChangeQuantity {
            sku: sku("A"),
            quantity: 4,
            at: t0(),
        })
        .then_expect_events(vec![OrderEvent::ItemQuantityChanged {
            sku: sku("A"),
            quantity: 4,
            at: t0(),
        }]);
    TestFramework::<Order>::with(())
        .given(vec![created(), added("A", 500, 1)])
        .when(OrderCommand::RemoveItem {
            sku: sku("A"),
            at: t0(),
        })
        .then_expect_events(vec![OrderEvent::ItemRemoved {
            sku: sku("A"),
            at: t0(),
        }]);
    expect_rule::<Order>(
        vec![created()],
        OrderCommand::RemoveItem {
            sku: sku("A"),
            at: t0(),
        },
        "item_not_in_order",
    );
}

#[test]
fn items_are_frozen_once_placed() {
    expect_rule::<Order>(
        placed_order(),
        OrderCommand::AddItem {
            product: product("B", 1),
            quantity: 1,
            at: t0(),
        },
        "order_not_editable",
    );
    expect_rule::<Order>(
        placed_order(),
        OrderCommand::RemoveItem {
            sku: sku("A"),
            at: t0(),
        },
        "order_not_editable",
    );
    expect_rule::<Order>(
        placed_order(),
        OrderCommand::Place { at: t0() },
        "order_not_editable",
    );
}

#[test]
fn place_totals_the_lines() {
    TestFramework::<Order>::with(())
        .given(vec![created(), added("A", 500, 2), added("B", 250, 3)])
        .when(OrderCommand::Place { at: t0() })
        .then_expect_events(vec![placed(1750, 5)]);
}

#[test]
fn empty_order_cannot_be_placed() {
    expect_rule::<Order>(
        vec![created()],
        OrderCommand::Place { at: t0() },
        "order_empty",
    );
}

#[test]
fn cancel_allowed_until_shipped() {
    for given in [
        vec![created()],
        placed_order(),
        [placed_order(), vec![paid(1000)]].concat(),
    ] {
        TestFramework::<Order>::with(())
            .given(given)
            .when(cancel())
            .then_expect_events(vec![OrderEvent::Cancelled {
                reason: Reason::parse("reason", "changed my mind").unwrap(),
                at: t0(),
            }]);
    }
    expect_rule::<Order>(
        [placed_order(), vec![paid(1000), shipped()]].concat(),
        cancel(),
        "order_already_shipped",
    );
    let cancelled = OrderEvent::Cancelled {
        reason: Reason::parse("reason", "x").unwrap(),
        at: t0(),
    };
    expect_rule::<Order>(
        vec![created(), cancelled],
        cancel(),
        "order_already_cancelled",
    );
}

#[test]
fn mark_paid_needs_full_capture_of_this_order() {
    TestFramework::<Order>::with(())
        .given(placed_order())
        .when(OrderCommand::MarkPaid {
            payment: captured(1000),
            at: t0(),
        })
        .then_expect_events(vec![paid(1000)]);
    expect_rule::<Order>(
        placed_order(),
        OrderCommand::MarkPaid {
            payment: captured(999),
            at: t0(),
        },
        "payment_amount_mismatch",
    );
    let mut refunded = captured(1000);
    refunded.refunded_minor = 1;
    expect_rule::<Order>(
        placed_order(),
        OrderCommand::MarkPaid {
            payment: refunded,
            at: t0(),
        },
        "payment_amount_mismatch",
    );
    let mut uncaptured = captured(1000);
    uncaptured.captured = None;
    expect_rule::<Order>(
        placed_order(),
        OrderCommand::MarkPaid {
            payment: uncaptured,
            at: t0(),
        },
        "payment_not_captured",
    );
    let mut other = captured(1000);
    other.order_id = Uuid::from_u128(99);
    expect_rule::<Order>(
        placed_order(),
        OrderCommand::MarkPaid {
            payment: other,
            at: t0(),
        },
        "payment_for_other_order",
    );
    expect_rule::<Order>(
        vec![created(), added("A", 500, 2)],
        OrderCommand::MarkPaid {
            payment: captured(1000),
            at: t0(),
        },
        "order_not_placed",
    );
    expect_rule::<Order>(
        [placed_order(), vec![paid(1000)]].concat(),
        OrderCommand::MarkPaid {
            payment: captured(1000),
            at: t0(),
        },
        "order_already_paid",
    );
}

#[test]
fn ship_only_when_paid_and_deliver_only_when_shipped() {
    expect_rule::<Order>(placed_order(), ship(), "order_not_paid");
    TestFramework::<Order>::with(())
        .given([placed_order(), vec![paid(1000)]].concat())
        .when(ship())
        .then_expect_events(vec![shipped()]);
    expect_rule::<Order>(
        [placed_order(), vec![paid(1000)]].concat(),
        OrderCommand::Deliver { at: t0() },
        "order_not_shipped",
    );
    TestFramework::<Order>::with(())
        .given([placed_order(), vec![paid(1000), shipped()]].concat())
        .when(OrderCommand::Deliver { at: t0() })
        .then_expect_events(vec![OrderEvent::Delivered { at: t0() }]);
}

#[test]
fn commands_on_unknown_order_are_rejected() {
    expect_rule::<Order>(vec![], OrderCommand::Place { at: t0() }, "order_not_found");
    expect_rule::<Order>(
        vec![created()],
        OrderCommand::Create {
            order_id: order_id(),
            customer: CustomerFacts {
                id: customer_id(),
                active: true,
            },
            currency: Currency::parse("EUR").unwrap(),
            at: t0(),
        },
        "order_exists",
    );
}
