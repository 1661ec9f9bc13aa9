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
    let keys = a.target.store.keyring(&a.target.data, &store).await?;
    let report = crate::seed::seed(&store, &keys, &options)
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

/// `events census|export|import`.
pub(super) async fn events(action: super::EventsAction, role: &str) -> anyhow::Result<()> {
    use super::EventsAction;
    let (EventsAction::Census { target, .. }
    | EventsAction::Export { target, .. }
    | EventsAction::Import { target, .. }) = &action;
    let _telemetry = target.log.init(role)?;
    let db = target.open().await?;
    let result = match &action {
        EventsAction::Census { json, .. } => census(&db, *json).await,
        EventsAction::Export { to, .. } => {
            let (count, checksum) = eventlog::archive::export(&db, to, 1000).await?;
            // stdout may be the archive itself: the summary goes to stderr.
            eprintln!("{count} events exported (checksum {checksum})");
            Ok(())
        }
        EventsAction::Import { from, .. } => {
            let r = eventlog::archive::import(&db, from, 1000).await?;
            if r.resumed > 0 {
                println!("resumed after {} events already in the store", r.resumed);
            }
            println!(
                "{} events imported and verified (checksum {})",
                r.events, r.checksum
            );
            Ok(())
        }
    };
    db.close().await;
    result
}

/// Prints the store's census: per type@version, count, positions and how
/// this release reads it.
async fn census(db: &eventlog::Database, json: bool) -> anyhow::Result<()> {
    let rows = eventlog::census::census(db).await?;
    let mut out = std::io::stdout();
    if json {
        let text = serde_json::to_string_pretty(&rows)?;
        return writeln!(out, "{text}").context("cannot write");
    }
    writeln!(
        out,
        "{:<30} {:>7} {:>10} {:>12} {:>12}  read as",
        "event type", "version", "count", "first", "last"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<30} {:>7} {:>10} {:>12} {:>12}  {}",
            r.event_type, r.event_version, r.count, r.first_position, r.last_position, r.read_as
        )?;
    }
    Ok(())
}

/// `keys status|rotate`.
pub(super) async fn keys(action: super::KeysAction, role: &str) -> anyhow::Result<()> {
    use super::KeysAction;
    let (KeysAction::Status { target, .. } | KeysAction::Rotate { target }) = &action;
    let _telemetry = target.log.init(role)?;
    let db = target.open().await?;
    let path = target.store.key_file(&target.data);
    let result = async {
        // The file must already open this store's keys: never rotate away
        // from a key that cannot read them.
        let keys = eventlog::Keyring::from_file(&db, &path)?;
        keys.open().await?;
        match &action {
            KeysAction::Status { json, .. } => key_status(&keys, *json).await,
            KeysAction::Rotate { .. } => {
                let rotated = eventlog::MasterKeys::load(&path)?.with_new_current();
                rotated.replace_file(&path)?;
                let keys = eventlog::Keyring::from_file(&db, &path)?;
                let mut rewrapped = keys.rewrap().await?;
                // Processes that read the file a moment ago may still wrap
                // a new user's key with the old master: catch those.
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                rewrapped += keys.rewrap().await?;
                writeln!(
                    std::io::stdout(),
                    "new master key {} is current; {rewrapped} data keys re-wrapped",
                    rotated.ids()[0]
                )?;
                key_status(&keys, false).await
            }
        }
    }
    .await;
    db.close().await;
    result
}

/// Prints how many data keys each master key wraps.
async fn key_status(keys: &eventlog::Keyring, json: bool) -> anyhow::Result<()> {
    let rows = keys.census().await?;
    let mut out = std::io::stdout();
    if json {
        let text = serde_json::to_string_pretty(&rows)?;
        return writeln!(out, "{text}").context("cannot write");
    }
    writeln!(out, "{:<18} {:>10}  state", "master key", "data keys")?;
    for r in &rows {
        let state = match (&r.master_key, r.current, r.held) {
            (None, ..) => "forgotten users (erased keys)",
            (Some(_), true, _) => "current",
            (Some(_), false, true) => "older, in the key file: run `keys rotate`",
            (Some(_), false, false) => "NOT in the key file: these keys cannot be opened",
        };
        let name = r.master_key.as_deref().unwrap_or("-");
        writeln!(out, "{name:<18} {:>10}  {state}", r.keys)?;
    }
    Ok(())
}

/// Copies the store of `a.target` into `a.to`, then verifies both.
pub(super) async fn store_copy(a: &super::StoreCopyArgs) -> anyhow::Result<()> {
    let from = a.target.open().await?;
    let mut to_args = a.target.store.clone();
    to_args.database_url = Some(a.to.clone());
    let (from_url, to_url) = (
        a.target.store.url(&a.target.data),
        to_args.url(&a.target.data),
    );
    anyhow::ensure!(
        !same_store(&from_url, &to_url),
        "--to names the source store itself"
    );
    let to = to_args.open(&a.target.data).await?;
    let options = eventlog::copy::CopyOptions {
        batch: a.batch,
        stop_after: a.stop_after,
    };
    let report = eventlog::copy::copy(&from, &to, options).await;
    from.close().await;
    to.close().await;
    let report = report?;
    let mut out = std::io::stdout();
    if report.resumed > 0 {
        writeln!(
            out,
            "resumed after {} events already in the target",
            report.resumed
        )?;
    }
    if report.stopped {
        writeln!(
            out,
            "stopped with {} events in the target (--stop-after); rerun to finish",
            report.events
        )?;
        return Ok(());
    }
    for (table, rows) in &report.side_rows {
        writeln!(out, "{table}: {rows} rows copied")?;
    }
    writeln!(
        out,
        "{} events copied and verified (checksum {})",
        report.events,
        report.checksum.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "serve from the target: its projectors build the read models from the log"
    )?;
    Ok(())
}

/// Whether two store URLs name the same store: the same SQLite file however
/// spelled, or the same URL.
fn same_store(a: &str, b: &str) -> bool {
    let file = |u: &str| {
        u.strip_prefix("sqlite://")
            .map(|p| p.split('?').next().unwrap_or(p).to_string())
    };
    match (file(a), file(b)) {
        (Some(x), Some(y)) => {
            let canonical = |p: &str| std::fs::canonicalize(p).ok();
            x == y || (canonical(&x).is_some() && canonical(&x) == canonical(&y))
        }
        _ => a == b,
    }
}
