//! The `projectors` binary: only the projection role (`shopstream project`),
//! for running projectors as their own processes against PostgreSQL.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    shopstream::runtime()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut cli = shopstream::cli::Cli::parse();
    cli.command = Some(shopstream::cli::Command::Project);
    cli.run().await
}
