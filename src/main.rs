//! The `shopstream` binary: parse the command line, run it.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopstream::cli::Cli::parse().run().await
}
