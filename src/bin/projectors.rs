//! The `projectors` binary: only the projection role (`shopstream project`),
//! for running projectors as their own processes against PostgreSQL.

fn main() -> anyhow::Result<()> {
    let args =
        shopstream::cli::role_binary::<shopstream::cli::ProjectArgs>("projectors", "project");
    shopstream::runtime()?.block_on(shopstream::cli::Command::Project(args).run())
}
