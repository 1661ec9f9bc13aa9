//! The command line of the role binaries.

use clap::Args;

use super::Cli;

/// The command line of a role binary (`projectors`, `command-api`,
/// `query-api`): the flags of `shopstream <subcommand>`, and no
/// subcommands. A subcommand given anyway is refused, naming the binary
/// that runs it; `--help` and errors exit as clap does.
pub fn role_binary<A: Args>(binary: &'static str, subcommand: &'static str) -> A {
    use clap::CommandFactory;
    let args: Vec<String> = std::env::args().collect();
    if let Some(given) = args.get(1).filter(|a| !a.starts_with('-')) {
        let known = Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == given.as_str());
        let refusal = if known {
            format!("the {binary} binary runs only `shopstream {subcommand}` and takes no subcommand; for `{given}` run `shopstream {given}`")
        } else {
            format!("unexpected argument '{given}': the {binary} binary takes only the flags of `shopstream {subcommand}` (see --help)")
        };
        clap::Error::raw(
            clap::error::ErrorKind::UnknownArgument,
            format!("{refusal}\n"),
        )
        .exit();
    }
    let about = format!("shopstream {subcommand}, as its own binary");
    let command = A::augment_args(clap::Command::new(binary))
        .version(env!("CARGO_PKG_VERSION"))
        .about(about);
    let matches = command.get_matches_from(args);
    A::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
