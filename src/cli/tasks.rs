//! The subcommands that run once and exit.

use std::io::Write;

use anyhow::Context;
use auth::Authenticator;

use super::{SeedArgs, TokenArgs};

/// Mints a token; stdout carries only the token, so
/// `TOKEN=$(shopstream token ...)` works.
pub(super) fn token(a: &TokenArgs) -> anyhow::Result<()> {
    let limit = a.auth.max_token_lifetime;
    anyhow::ensure!(
        a.ttl.to_std().is_ok_and(|ttl| ttl <= limit),
        "--ttl is longer than --max-token-lifetime ({}): the servers would refuse the token",
        humantime::format_duration(limit)
    );
    let token = Authenticator::new(a.auth.secret(&a.data)?).mint(&a.sub, a.role, a.ttl);
    writeln!(std::io::stdout(), "{token}").context("cannot write the token")
}

pub(super) async fn seed(a: SeedArgs) -> anyhow::Result<()> {
    let store = a.target.open().await?;
    let options = crate::seed::SeedOptions {
        customers: a.customers,
        orders: a.orders,
        seed: a.seed,
        days: a.days,
        end: chrono::Utc::now().date_naive(),
    };
    let report = crate::seed::seed(&store, &options)
        .await
        .context("seeding failed")?;
    writeln!(
        std::io::stdout(),
        "seeded {} events ({} customers, {} orders over {} days) in {:.1}s",
        report.events,
        a.customers,
        a.orders,
        a.days,
        report.seconds
    )?;
    store.close().await;
    Ok(())
}
