//! The `query-api` binary: only the GraphQL query API (`shopstream query`),
//! for serving reads as their own processes against PostgreSQL.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    shopstream::runtime()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut cli = shopstream::cli::Cli::parse();
    cli.command = Some(shopstream::cli::Command::Query);
    cli.run().await
}
