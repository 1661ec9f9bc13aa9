//! The catalog: products, their names and prices, retirement (admin).

use auth::{Principal, Role};
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::product::ProductCommand;
use domain::{Money, Product, ProductName, Sku};

use crate::run::{Attempt, Done, Mode};
use crate::{CommandContext, CommandError, Commands};

impl Commands {
    /// Adds a product to the catalog.
    ///
    /// # Errors
    /// [`CommandError::Rule`] `product_exists` for a SKU in use.
    pub async fn create_product(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        sku: Sku,
        name: ProductName,
        unit_price: Money,
    ) -> Result<Done, CommandError> {
        who.require(&[Role::Admin])?;
        let id = sku.as_str().to_string();
        self.product(who, ctx, &id, Mode::Create, || ProductCommand::Create {
            sku: sku.clone(),
            name: name.clone(),
            unit_price,
            at: Utc::now(),
        })
        .await
        .map_err(|e| match e {
            CommandError::Rule(r) if r.rule == "already_exists" => {
                CommandError::Rule(domain::DomainError::conflict("product_exists", r.message))
            }
            other => other,
        })
    }

    /// Renames and/or reprices a product.
    ///
    /// # Errors
    /// Unknown products; rule violations.
    pub async fn update_product(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        sku: &Sku,
        name: Option<ProductName>,
        unit_price: Option<Money>,
    ) -> Result<Done, CommandError> {
        who.require(&[Role::Admin])?;
        self.product(who, ctx, sku.as_str(), Mode::Update, || {
            ProductCommand::Update {
                name: name.clone(),
                unit_price,
                at: Utc::now(),
            }
        })
        .await
    }

    /// Retires a product: it can no longer be added to orders.
    ///
    /// # Errors
    /// Unknown products; rule violations.
    pub async fn retire_product(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        sku: &Sku,
    ) -> Result<Done, CommandError> {
        who.require(&[Role::Admin])?;
        self.product(who, ctx, sku.as_str(), Mode::Update, || {
            ProductCommand::Retire { at: Utc::now() }
        })
        .await
    }

    async fn product(
        &self,
        who: &Principal,
        ctx: &CommandContext,
        id: &str,
        mode: Mode,
        command: impl Fn() -> ProductCommand,
    ) -> Result<Done, CommandError> {
        self.run(Product::TYPE, |source| {
            Attempt::new(&self.products, id, mode, Some(who), ctx).decide(
                source,
                |_| true,
                |_| Ok(command()),
            )
        })
        .await
    }
}
