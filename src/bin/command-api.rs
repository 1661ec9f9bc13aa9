//! The `command-api` binary: only the command REST API (`shopstream
//! commands`), for running it as its own process against PostgreSQL.

fn main() -> anyhow::Result<()> {
    let args =
        shopstream::cli::role_binary::<shopstream::cli::CommandsArgs>("command-api", "commands");
    shopstream::runtime()?.block_on(shopstream::cli::Command::Commands(args).run())
}
