//! One order's life in the seed: a cart, then cancelled, or placed and
//! paid (or its payment failing), mostly shipped and delivered.

use chrono::{DateTime, Duration, Utc};
use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use domain::{Carrier, Money, TrackingNumber};
use rand::rngs::StdRng;
use rand::Rng;
use uuid::Uuid;

use super::{bad, popular, reason, uuid, Seeder};

/// One order's stream: its id, its next sequence and its clock.
struct OrderStream {
    id: Uuid,
    key: String,
    seq: i64,
    t: DateTime<Utc>,
}

impl OrderStream {
    /// Moves the order's clock on by 30 s to 30 min.
    fn step(&mut self, rng: &mut StdRng) -> DateTime<Utc> {
        self.t += Duration::seconds(rng.gen_range(30..1800));
        self.t
    }
}

impl Seeder<'_> {
    fn push_order(
        &mut self,
        o: &mut OrderStream,
        event: &OrderEvent,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        o.seq += 1;
        self.w.push("Order", &o.key, o.seq, event, at)
    }

    /// One order: a cart of 1–8 popular products, then cancelled, or
    /// placed and paid (or its payment failing).
    pub(super) fn order(&mut self) -> anyhow::Result<()> {
        let (customer, registered) = self.customers[self.rng.gen_range(0..self.customers.len())];
        let left = (self.start + Duration::seconds(self.span) - registered)
            .num_seconds()
            .max(60);
        let t = registered + Duration::seconds(self.rng.gen_range(60..=left));
        let id = uuid(&mut self.rng);
        let mut o = OrderStream {
            id,
            key: id.to_string(),
            seq: 0,
            t,
        };
        let at = o.step(&mut self.rng);
        let created = OrderEvent::Created {
            order_id: id,
            customer_id: customer,
            currency: self.eur,
            at,
        };
        self.push_order(&mut o, &created, at)?;
        let (total, count) = self.cart(&mut o)?;
        if self.rng.gen_bool(0.06) {
            let at = o.step(&mut self.rng);
            let cancelled = OrderEvent::Cancelled {
                reason: reason("changed_mind")?,
                at,
            };
            return self.push_order(&mut o, &cancelled, at);
        }
        let amount = Money {
            amount_minor: total,
            currency: self.eur,
        };
        let at = o.step(&mut self.rng);
        let placed = OrderEvent::Placed {
            total: amount,
            item_count: count,
            at,
        };
        self.push_order(&mut o, &placed, at)?;
        self.pay(&mut o, customer, amount)
    }

    /// The order's lines; returns its total and item count.
    fn cart(&mut self, o: &mut OrderStream) -> anyhow::Result<(i64, u32)> {
        let lines = self.rng.gen_range(1..=8usize);
        let mut chosen: Vec<usize> = Vec::new();
        let (mut total, mut count) = (0i64, 0u32);
        while chosen.len() < lines.min(self.catalog.len()) {
            let i = popular(&mut self.rng, &self.weights, self.total_weight);
            if chosen.contains(&i) {
                continue;
            }
            chosen.push(i);
            let (sku, name, price) = self.catalog[i].clone();
            let quantity = if self.rng.gen_bool(0.8) {
                1
            } else {
                self.rng.gen_range(2..=5)
            };
            total += price.amount_minor * i64::from(quantity);
            count += quantity;
            let at = o.step(&mut self.rng);
            let added = OrderEvent::ItemAdded {
                sku,
                name,
                unit_price: price,
                quantity,
                at,
                // Seeded products have one event: their creation.
                catalog_version: Some(1),
            };
            self.push_order(o, &added, at)?;
        }
        Ok((total, count))
    }

    /// A placed order's payment: failed (and the order cancelled), or
    /// captured, the order paid, mostly shipped and delivered, sometimes
    /// partly refunded.
    fn pay(&mut self, o: &mut OrderStream, customer: Uuid, amount: Money) -> anyhow::Result<()> {
        let payment_id = uuid(&mut self.rng);
        let pid = payment_id.to_string();
        let at = o.step(&mut self.rng);
        let initiated = PaymentEvent::Initiated {
            payment_id,
            order_id: o.id,
            customer_id: customer,
            amount,
            at,
        };
        self.w.push("Payment", &pid, 1, &initiated, at)?;
        if self.rng.gen_bool(0.12) {
            let why = if self.rng.gen_bool(0.6) {
                "card_declined"
            } else {
                "insufficient_funds"
            };
            let at = o.step(&mut self.rng);
            let failed = PaymentEvent::Failed {
                reason: reason(why)?,
                at,
            };
            self.w.push("Payment", &pid, 2, &failed, at)?;
            let at = o.step(&mut self.rng);
            let cancelled = OrderEvent::Cancelled {
                reason: reason("payment_failed")?,
                at,
            };
            return self.push_order(o, &cancelled, at);
        }
        let at = o.step(&mut self.rng);
        self.w.push(
            "Payment",
            &pid,
            2,
            &PaymentEvent::Authorized { amount, at },
            at,
        )?;
        let at = o.step(&mut self.rng);
        self.w.push(
            "Payment",
            &pid,
            3,
            &PaymentEvent::Captured { amount, at },
            at,
        )?;
        let at = o.step(&mut self.rng);
        let paid = OrderEvent::Paid {
            payment_id,
            amount,
            at,
        };
        self.push_order(o, &paid, at)?;
        if self.rng.gen_bool(0.9) {
            self.ship(o)?;
        }
        if self.rng.gen_bool(0.05) {
            let part = Money {
                amount_minor: (amount.amount_minor / 4).max(1),
                currency: self.eur,
            };
            let at = o.step(&mut self.rng);
            let refunded = PaymentEvent::Refunded {
                amount: part,
                reason: reason("damaged")?,
                at,
            };
            self.w.push("Payment", &pid, 4, &refunded, at)?;
        }
        Ok(())
    }

    /// Shipped, and mostly delivered.
    fn ship(&mut self, o: &mut OrderStream) -> anyhow::Result<()> {
        let carrier = if self.rng.gen_bool(0.5) { "DHL" } else { "UPS" };
        let carrier = Carrier::parse("carrier", carrier).map_err(bad)?;
        let tracking = TrackingNumber::parse(
            "tracking_number",
            &format!("TRK{:010}", self.rng.gen_range(0..10_000_000_000u64)),
        )
        .map_err(bad)?;
        let at = o.step(&mut self.rng);
        let shipped = OrderEvent::Shipped {
            carrier,
            tracking_number: tracking,
            at,
        };
        self.push_order(o, &shipped, at)?;
        if self.rng.gen_bool(0.95) {
            let at = o.step(&mut self.rng);
            self.push_order(o, &OrderEvent::Delivered { at }, at)?;
        }
        Ok(())
    }
}
