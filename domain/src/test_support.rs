//! Helpers for the given/when/then tests.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;

use crate::{Currency, DomainError, Money};

/// A fixed instant: aggregates never read the clock, so tests pin time.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 9, 26, 53)
        .single()
        .expect("valid date")
}

pub fn eur(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: Currency::parse("EUR").expect("EUR"),
    }
}

/// Runs `when` against `given` and asserts the command is rejected by `rule`.
pub fn expect_rule<A>(given: Vec<A::Event>, when: A::Command, rule: &str)
where
    A: Aggregate<Error = DomainError, Services = ()>,
{
    let result = TestFramework::<A>::with(())
        .given(given)
        .when(when)
        .inspect_result();
    match result {
        Err(e) => assert_eq!(e.rule, rule, "rejected by the wrong rule: {e:?}"),
        Ok(events) => panic!("expected rule {rule} to reject, got events {events:?}"),
    }
}
