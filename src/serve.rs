//! `shopstream serve`: every role in one process.

use std::io::Write;

use anyhow::Context;
use tokio::net::TcpListener;

use std::sync::Arc;

use readmodel::Wake;

use crate::cli::connect;
use crate::config::Settings;
use crate::projections;

/// Runs only the projectors until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the store cannot be opened.
pub async fn project(settings: &Settings) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    db.migrate()
        .await
        .context("cannot migrate the event store")?;
    let read_db = projections::open(settings).await?;
    let running = match settings.kafka()? {
        Some(kafka) => {
            tracing::info!(projections = ?readmodel::NAMES, brokers = %kafka.brokers, "projectors consuming Kafka");
            projections::start_kafka(&kafka, &read_db, &Wake::default())
        }
        None => {
            tracing::info!(projections = ?readmodel::NAMES, "projectors tailing the store");
            projections::start(settings, &db, &read_db, &Wake::default(), &Wake::default())
        }
    };
    let health = health_server(settings, &db, &read_db).await?;
    shutdown_signal().await;
    if let Some(h) = health {
        h.abort();
    }
    running.stop().await;
    read_db.close().await;
    db.close().await;
    Ok(())
}

/// Serves only the GraphQL query API over the read models (projectors run
/// elsewhere), waking consistency-token waiters on Postgres notifications.
///
/// # Errors
/// When the store cannot be opened or the address is taken.
pub async fn query(settings: &Settings) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    db.migrate()
        .await
        .context("cannot migrate the event store")?;
    let read_db = projections::open(settings).await?;
    let commits = Wake::default();
    let listener_task = read_db.is_postgres().then(|| {
        readmodel::listen_postgres(
            settings.database_url(),
            "shopstream_projections",
            commits.clone(),
        )
    });
    // A missed notification (reconnect) delays a waiter by at most a second.
    let ticker = {
        let commits = commits.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                commits.notify();
            }
        })
    };
    let graphql = query_api::router(
        &read_db,
        &db,
        settings.authenticator()?,
        commits,
        settings.query_config(),
    );
    let limits = settings.http_limits();
    let public =
        operations_without_metrics(&db, None).merge(public_metrics(settings, &db, &read_db));
    let app = command_api::server::edge(graphql.merge(public), &limits);
    let ops = health_server(settings, &db, &read_db).await?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let banner = format!("\nshopstream query API\n\n  GraphQL       http://{addr}/graphql\n  Subscriptions ws://{addr}/graphql/ws\n\n");
    let _ = std::io::stdout().lock().write_all(banner.as_bytes());
    command_api::server::serve(listener, app, limits, shutdown_signal())
        .await
        .context("server failed")?;
    if let Some(ops) = ops {
        ops.abort();
    }
    ticker.abort();
    if let Some(l) = listener_task {
        l.abort();
    }
    read_db.close().await;
    db.close().await;
    Ok(())
}

/// `/livez`, `/readyz` (the store answers, unless a role brings its own)
/// and `/metrics`: what every role serves for operators.
fn operations(
    db: &eventlog::Database,
    read_db: &readmodel::ReadDb,
    readyz: Option<axum::routing::MethodRouter>,
) -> axum::Router {
    operations_without_metrics(db, readyz).merge(projections::metrics_router(db, read_db))
}

/// `/livez` and `/readyz` alone.
fn operations_without_metrics(
    db: &eventlog::Database,
    readyz: Option<axum::routing::MethodRouter>,
) -> axum::Router {
    let readyz = readyz.unwrap_or_else(|| {
        axum::routing::get(command_api::routes::health::readyz)
            .with_state(eventlog::Health::watch(db.clone()))
    });
    axum::Router::new()
        .route(
            "/livez",
            axum::routing::get(command_api::routes::health::livez),
        )
        .route("/readyz", readyz)
}

/// `/metrics` for the public port: there unless an operations port is set.
fn public_metrics(
    settings: &Settings,
    db: &eventlog::Database,
    read_db: &readmodel::ReadDb,
) -> axum::Router {
    if settings.operations_listen.is_some() {
        axum::Router::new()
    } else {
        projections::metrics_router(db, read_db)
    }
}

/// Serves `/livez`, `/readyz` and `/metrics` on `--operations-listen`, when
/// set (every role; the only HTTP of `project` and `saga`).
async fn health_server(
    settings: &Settings,
    db: &eventlog::Database,
    read_db: &readmodel::ReadDb,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    operations_server(settings, db, read_db, None).await
}

/// [`health_server`] with a role's own readiness.
async fn operations_server(
    settings: &Settings,
    db: &eventlog::Database,
    read_db: &readmodel::ReadDb,
    readyz: Option<axum::routing::MethodRouter>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = settings.operations_listen else {
        return Ok(None);
    };
    let limits = settings.http_limits();
    let app = command_api::server::edge(operations(db, read_db, readyz), &limits);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(address = %listener.local_addr()?, "operations port: /metrics /livez /readyz");
    Ok(Some(tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(e) = command_api::server::serve(listener, app, limits, forever).await {
            tracing::error!(error = %e, "health server failed");
        }
    })))
}

/// Starts the relay in this process; `wake` signals appends.
fn start_relay(
    settings: &Settings,
    kafka: &relay::kafka::KafkaSettings,
    db: &eventlog::Database,
    wake: &Wake,
) -> anyhow::Result<(
    relay::RelayStatus,
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<()>>,
)> {
    let relay = relay::Relay::new(db, relay::RelayConfig::new(kafka.clone()))
        .context("cannot start the relay")?;
    let status = relay.status();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Appends in other processes arrive as notifications.
    let listener =
        readmodel::listen_postgres(settings.database_url(), "shopstream_events", wake.clone());
    let task = tokio::spawn(relay.run(wake.subscribe(), stopped));
    Ok((status, stop, vec![task, listener]))
}

/// `/readyz` of a relay: ready while it is standing by, or active with the
/// broker answering; 503 with the reason otherwise.
fn relay_readyz(status: relay::RelayStatus) -> axum::routing::MethodRouter {
    axum::routing::get(move || {
        let state = status.get();
        async move {
            use axum::response::IntoResponse;
            let ready =
                state.role == "standby" || (state.role == "active" && state.kafka_reachable);
            if ready {
                axum::Json(serde_json::json!({ "status": "ready", "relay": state })).into_response()
            } else {
                let detail = match (&state.role[..], &state.last_error) {
                    ("active", Some(e)) => format!(
                        "kafka is unreachable: {e}; {} records waiting",
                        state.in_flight
                    ),
                    ("active", None) => {
                        format!("kafka is unreachable; {} records waiting", state.in_flight)
                    }
                    (role, _) => format!("the relay is {role}"),
                };
                command_api::error::problem(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "kafka_unavailable",
                    &detail,
                )
                .into_response()
            }
        }
    })
}

/// Runs only the relay (store → Kafka) until Ctrl-C or SIGTERM, with
/// `/livez`, `/readyz` and `/metrics` on `--listen`.
///
/// # Errors
/// Without --kafka-brokers or Postgres; when the address is taken.
pub async fn relay(settings: &Settings) -> anyhow::Result<()> {
    let kafka = settings
        .kafka()?
        .context("the relay needs --kafka-brokers (or SHOPSTREAM_KAFKA_BROKERS)")?;
    let db = connect(settings).await?;
    db.migrate()
        .await
        .context("cannot migrate the event store")?;
    let read_db = projections::open(settings).await?;
    let wake = Wake::default();
    let (status, stop, tasks) = start_relay(settings, &kafka, &db, &wake)?;
    let limits = settings.http_limits();
    let ops =
        operations_server(settings, &db, &read_db, Some(relay_readyz(status.clone()))).await?;
    let app = command_api::server::edge(
        operations_without_metrics(&db, Some(relay_readyz(status)))
            .merge(public_metrics(settings, &db, &read_db)),
        &limits,
    );
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let banner = format!(
        "\nshopstream relay (store → Kafka {} topic {})\n\n  Health        http://{addr}/livez  http://{addr}/readyz\n  Metrics       http://{addr}/metrics\n\n",
        kafka.brokers, kafka.topic
    );
    let _ = std::io::stdout().lock().write_all(banner.as_bytes());
    command_api::server::serve(listener, app, limits, shutdown_signal())
        .await
        .context("server failed")?;
    if let Some(ops) = ops {
        ops.abort();
    }
    let _ = stop.send(true);
    let mut tasks = tasks.into_iter();
    if let Some(relay_task) = tasks.next() {
        let _ = relay_task.await;
    }
    for t in tasks {
        t.abort();
    }
    read_db.close().await;
    db.close().await;
    Ok(())
}

/// Serves only the command REST API (what the `command-api` binary runs).
///
/// # Errors
/// When the store cannot be opened or the address is taken.
pub async fn commands(settings: &Settings) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    db.migrate()
        .await
        .context("cannot migrate the event store")?;
    let read_db = projections::open(settings).await?;
    let config = settings.command_config()?;
    let admin = projections::admin_router(settings.authenticator()?, &db, &read_db);
    let metrics = public_metrics(settings, &db, &read_db);
    let ops = health_server(settings, &db, &read_db).await?;
    let app = command_api::build_with(db.clone(), &config, admin.merge(metrics));
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let banner = format!(
        "\nshopstream command API\n\n  REST API      http://{addr}/v1\n  API docs      http://{addr}/docs\n  Health        http://{addr}/livez  http://{addr}/readyz\n\n"
    );
    let _ = std::io::stdout().lock().write_all(banner.as_bytes());
    app.run(listener, shutdown_signal())
        .await
        .context("server failed")?;
    if let Some(ops) = ops {
        ops.abort();
    }
    read_db.close().await;
    db.close().await;
    Ok(())
}

/// Runs only the saga (and the simulated provider when asked) until Ctrl-C
/// or SIGTERM: what `shopstream saga` runs.
///
/// # Errors
/// When the store cannot be opened.
pub async fn saga(settings: &Settings) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    db.migrate()
        .await
        .context("cannot migrate the event store")?;
    let read_db = projections::open(settings).await?;
    let wake = Wake::default();
    let listener = read_db.is_postgres().then(|| {
        readmodel::listen_postgres(settings.database_url(), "shopstream_events", wake.clone())
    });
    let mut settings = settings.clone();
    settings.saga = true;
    let commands = shared_commands(&settings, &db);
    let (stop, tasks) = start_saga(&settings, &db, &read_db, &wake, commands)?;
    let health = health_server(&settings, &db, &read_db).await?;
    shutdown_signal().await;
    if let Some(h) = health {
        h.abort();
    }
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    if let Some(l) = listener {
        l.abort();
    }
    read_db.close().await;
    db.close().await;
    Ok(())
}

/// Starts the saga and the simulated provider when configured.
/// The repositories of one process.
fn shared_commands(settings: &Settings, db: &eventlog::Database) -> Arc<commands::Commands> {
    Arc::new(commands::Commands::new(
        db,
        settings.snapshot_every,
        settings.aggregate_cache,
    ))
}

fn start_saga(
    settings: &Settings,
    db: &eventlog::Database,
    read_db: &readmodel::ReadDb,
    wake: &Wake,
    commands: Arc<commands::Commands>,
) -> anyhow::Result<(
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<()>>,
)> {
    use crate::saga::simulator::{Simulator, SimulatorConfig};
    use crate::saga::{Saga, SagaConfig, SystemClock};
    anyhow::ensure!(
        !(settings.simulate_payments && settings.production),
        "the simulated payment provider cannot run in production mode"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&settings.simulated_failure_rate),
        "--simulated-failure-rate must be between 0 and 1"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let log = eventlog::EventLog::new(db.clone());
    let tick = std::time::Duration::from_millis(500);
    // The simulated provider only makes sense with someone initiating payments.
    if settings.saga || settings.simulate_payments {
        let config = SagaConfig {
            deadline: chrono::Duration::seconds(i64::from(settings.payment_deadline_seconds)),
            max_retries: settings.payment_retries,
        };
        let saga = Saga::new(
            commands.clone(),
            log.clone(),
            read_db.clone(),
            Arc::new(SystemClock),
            config,
        );
        tasks.push(tokio::spawn(saga.run(wake.clone(), tick, stopped.clone())));
        tracing::info!("order-payment saga running");
    }
    if settings.simulate_payments {
        let config = SimulatorConfig {
            failure_rate: settings.simulated_failure_rate,
            ..SimulatorConfig::default()
        };
        let simulator = Simulator::new(commands, log, read_db.clone(), config);
        tasks.push(tokio::spawn(simulator.run(wake.clone(), tick, stopped)));
        tracing::info!("simulated payment provider running");
    }
    Ok((stop, tasks))
}

/// Migrates, starts the HTTP server, prints where everything is, and runs
/// until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the store cannot be opened or migrated, or the address is taken.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    db.migrate()
        .await
        .context("cannot migrate the event store")?;
    let read_db = projections::open(settings).await?;
    let wake = Wake::default();
    let commits = Wake::default();
    let kafka = settings.kafka()?;
    let (running, relay) = match &kafka {
        Some(kafka) => (
            projections::start_kafka(kafka, &read_db, &commits),
            Some(start_relay(settings, kafka, &db, &wake)?),
        ),
        None => (
            projections::start(settings, &db, &read_db, &wake, &commits),
            None,
        ),
    };
    let mut config = settings.command_config()?;
    // The API and the saga share repositories, so each sees the other's
    // appends in its aggregate cache.
    let commands = shared_commands(settings, &db);
    config.commands = Some(commands.clone());
    let appended = wake.clone();
    config.on_append = Some(Arc::new(move || appended.notify()));
    let admin = projections::admin_router(settings.authenticator()?, &db, &read_db);
    let graphql = query_api::router(
        &read_db,
        &db,
        settings.authenticator()?,
        commits,
        settings.query_config(),
    );
    let metrics = public_metrics(settings, &db, &read_db);
    let ops = health_server(settings, &db, &read_db).await?;
    let app = command_api::build_with(db.clone(), &config, admin.merge(graphql).merge(metrics));
    let processes = start_saga(settings, &db, &read_db, &wake, commands)?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    print_banner(settings, addr);
    if let Some(kafka) = &kafka {
        let line = format!(
            "  Kafka         relay → {} topic {} ({} partitions); projectors consume it\n\n",
            kafka.brokers, kafka.topic, kafka.partitions
        );
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
    app.run(listener, shutdown_signal())
        .await
        .context("server failed")?;
    if let Some(ops) = ops {
        ops.abort();
    }
    let _ = processes.0.send(true);
    for task in processes.1 {
        let _ = task.await;
    }
    running.stop().await;
    if let Some((_, stop, tasks)) = relay {
        let _ = stop.send(true);
        let mut tasks = tasks.into_iter();
        if let Some(relay_task) = tasks.next() {
            let _ = relay_task.await;
        }
        for t in tasks {
            t.abort();
        }
    }
    read_db.close().await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn print_banner(settings: &Settings, addr: std::net::SocketAddr) {
    let store = match &settings.database_url {
        None => format!(
            "embedded SQLite at {}",
            settings.data_dir.join("shopstream.db").display()
        ),
        Some(url) if url.starts_with("sqlite:") => "SQLite".to_string(),
        Some(_) => "PostgreSQL".to_string(),
    };
    let base = format!("http://{addr}");
    let graphiql = if settings.production {
        ""
    } else {
        "   (GraphiQL: open it in a browser)"
    };
    // The banner is for the person who started the server: stdout, not the
    // log. A closed stdout (`shopstream | head`) must not stop the server.
    let banner = format!(
        "\nshopstream is running ({store})\n\
         \n  REST API      {base}/v1\
         \n  API docs      {base}/docs   (OpenAPI document: {base}/openapi.json)\
         \n  GraphQL       {base}/graphql{graphiql}\
         \n  Health        {base}/livez  {base}/readyz\
         \n  Projections   {base}/v1/admin/projections (admin)   read models: customer_view, order_view, analytics\
         \n  Metrics       {base}/metrics\
         \n\nMint a token:   cargo run --release -- token --sub <user-id> --role customer|admin|service|analyst\
         \n                (same --data-dir / --jwt-secret as this server)\
         \nStop:           Ctrl-C\n\n"
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
