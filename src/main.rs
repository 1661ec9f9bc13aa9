//! The `shopstream` binary: parse the command line, run it.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    shopstream::runtime()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    shopstream::cli::Cli::parse().run().await
}
