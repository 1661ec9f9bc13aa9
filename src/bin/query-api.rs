//! The `query-api` binary: only the GraphQL query API (`shopstream query`),
//! for serving reads as their own processes against PostgreSQL.

fn main() -> anyhow::Result<()> {
    let args = shopstream::cli::role_binary::<shopstream::cli::QueryArgs>("query-api", "query");
    shopstream::runtime()?.block_on(shopstream::cli::Command::Query(args).run())
}
