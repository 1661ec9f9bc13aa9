//! The `command-api` binary: only the command REST API (`shopstream
//! commands`), for running it as its own process against PostgreSQL.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    shopstream::runtime()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut cli = shopstream::cli::Cli::parse();
    cli.command = Some(shopstream::cli::Command::Commands);
    cli.run().await
}
