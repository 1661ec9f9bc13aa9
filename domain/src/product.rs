//! The `Product` aggregate: a minimal catalog, so that customers cannot
//! choose their own prices. The aggregate id is the SKU.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::domain_event;
use crate::{DomainError, EventName, Money, ProductName, Sku};

/// What the catalog can be asked to do (admin only).
#[derive(Debug, Clone, PartialEq)]
pub enum ProductCommand {
    Create {
        sku: Sku,
        name: ProductName,
        unit_price: Money,
        at: DateTime<Utc>,
    },
    /// Change the name and/or the price (a PATCH).
    Update {
        name: Option<ProductName>,
        unit_price: Option<Money>,
        at: DateTime<Utc>,
    },
    Retire {
        at: DateTime<Utc>,
    },
}

/// What happened to a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProductEvent {
    #[serde(rename = "ProductCreated")]
    Created {
        sku: Sku,
        name: ProductName,
        unit_price: Money,
        at: DateTime<Utc>,
    },
    #[serde(rename = "ProductRenamed")]
    Renamed {
        name: ProductName,
        at: DateTime<Utc>,
    },
    #[serde(rename = "ProductRepriced")]
    Repriced {
        unit_price: Money,
        at: DateTime<Utc>,
    },
    #[serde(rename = "ProductRetired")]
    Retired { at: DateTime<Utc> },
}

impl EventName for ProductEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "ProductCreated",
            Self::Renamed { .. } => "ProductRenamed",
            Self::Repriced { .. } => "ProductRepriced",
            Self::Retired { .. } => "ProductRetired",
        }
    }
}
domain_event!(ProductEvent);

/// A product's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub sku: Option<Sku>,
    pub name: Option<ProductName>,
    pub unit_price: Option<Money>,
    pub retired: bool,
}

impl Product {
    /// Whether the product has been created.
    pub fn exists(&self) -> bool {
        self.sku.is_some()
    }

    fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, DomainError> {
        match command {
            ProductCommand::Create {
                sku,
                name,
                unit_price,
                at,
            } => {
                if self.exists() {
                    return Err(DomainError::conflict(
                        "product_exists",
                        format!("product {} already exists", sku.as_str()),
                    ));
                }
                Ok(vec![ProductEvent::Created {
                    sku,
                    name,
                    unit_price,
                    at,
                }])
            }
            ProductCommand::Update {
                name,
                unit_price,
                at,
            } => {
                self.ensure_live()?;
                let mut events = Vec::new();
                if let Some(name) = name.filter(|n| Some(n) != self.name.as_ref()) {
                    events.push(ProductEvent::Renamed { name, at });
                }
                if let Some(unit_price) = unit_price.filter(|p| Some(p) != self.unit_price.as_ref())
                {
                    events.push(ProductEvent::Repriced { unit_price, at });
                }
                Ok(events)
            }
            ProductCommand::Retire { at } => {
                self.ensure_live()?;
                Ok(vec![ProductEvent::Retired { at }])
            }
        }
    }

    fn ensure_live(&self) -> Result<(), DomainError> {
        if !self.exists() {
            return Err(DomainError::conflict(
                "product_not_found",
                "the product does not exist",
            ));
        }
        if self.retired {
            return Err(DomainError::conflict(
                "product_retired",
                "the product is retired",
            ));
        }
        Ok(())
    }
}

crate::event::aggregate!(Product, "Product", ProductCommand, ProductEvent);

impl Product {
    /// Folds one event into the state (cqrs-es's `apply`).
    fn evolve(&mut self, event: ProductEvent) {
        match event {
            ProductEvent::Created {
                sku,
                name,
                unit_price,
                ..
            } => {
                self.sku = Some(sku);
                self.name = Some(name);
                self.unit_price = Some(unit_price);
            }
            ProductEvent::Renamed { name, .. } => self.name = Some(name),
            ProductEvent::Repriced { unit_price, .. } => self.unit_price = Some(unit_price),
            ProductEvent::Retired { .. } => self.retired = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::test_support::{eur, expect_rule, t0};

    fn created() -> ProductEvent {
        ProductEvent::Created {
            sku: Sku::parse("TEE-1").unwrap(),
            name: ProductName::parse("name", "Tee").unwrap(),
            unit_price: eur(1999),
            at: t0(),
        }
    }

    fn create() -> ProductCommand {
        let ProductEvent::Created {
            sku,
            name,
            unit_price,
            at,
        } = created()
        else {
            unreachable!()
        };
        ProductCommand::Create {
            sku,
            name,
            unit_price,
            at,
        }
    }

    #[test]
    fn create_records_the_product() {
        TestFramework::<Product>::with(())
            .given_no_previous_events()
            .when(create())
            .then_expect_events(vec![created()]);
    }

    #[test]
    fn create_twice_is_rejected() {
        expect_rule::<Product>(vec![created()], create(), "product_exists");
    }

    #[test]
    fn reprice_and_rename() {
        let name = ProductName::parse("name", "Blue Tee").unwrap();
        TestFramework::<Product>::with(())
            .given(vec![created()])
            .when(ProductCommand::Update {
                name: Some(name.clone()),
                unit_price: Some(eur(2499)),
                at: t0(),
            })
            .then_expect_events(vec![
                ProductEvent::Renamed { name, at: t0() },
                ProductEvent::Repriced {
                    unit_price: eur(2499),
                    at: t0(),
                },
            ]);
    }

    #[test]
    fn retired_products_are_frozen() {
        let given = vec![created(), ProductEvent::Retired { at: t0() }];
        expect_rule::<Product>(
            given.clone(),
            ProductCommand::Retire { at: t0() },
            "product_retired",
        );
        expect_rule::<Product>(
            given,
            ProductCommand::Update {
                name: None,
                unit_price: Some(eur(1)),
                at: t0(),
            },
            "product_retired",
        );
    }

    #[test]
    fn unknown_product_cannot_change() {
        expect_rule::<Product>(
            vec![],
            ProductCommand::Retire { at: t0() },
            "product_not_found",
        );
    }
}
