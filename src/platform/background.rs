//! The roles that run behind the HTTP server: projectors, relay, saga, and
//! the wake-ups they share.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::{Background, Platform, Roles};
use crate::config::Settings;
use crate::projections;

/// The started background roles, in start order.
pub(super) struct Started {
    pub roles: Vec<Background>,
    /// The relay's status, for its readiness.
    pub relay: Option<relay::RelayStatus>,
}

/// Starts the background roles of `roles` and the wake-ups they need.
///
/// # Errors
/// The relay cannot start, or the saga's settings are wrong.
pub(super) fn start(p: &Platform, settings: &Settings, roles: Roles) -> anyhow::Result<Started> {
    let mut started = Started {
        roles: Vec::new(),
        relay: None,
    };
    started.roles.push(wakeups(p, settings, roles));
    if roles.projectors {
        started.roles.push(projectors(p, settings));
    }
    if let (true, Some(kafka)) = (roles.relay, &p.kafka) {
        let relay = relay::Relay::new(&p.db, relay::RelayConfig::new(kafka.clone()))
            .context("cannot start the relay")?;
        started.relay = Some(relay.status());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(relay.run(p.wake.subscribe(), stopped));
        started.roles.push(Background {
            stop: Some(stop),
            join: vec![task],
            abort: Vec::new(),
        });
    }
    if let (true, Some(commands)) = (roles.saga, &p.commands) {
        started.roles.push(saga(p, settings, commands.clone())?);
    }
    Ok(started)
}

/// On Postgres, `NOTIFY`s from other processes: new events (for tailers
/// here) and projection commits (for consistency waiters, when the
/// projectors run elsewhere). Pollers cover missed ones.
fn wakeups(p: &Platform, settings: &Settings, roles: Roles) -> Background {
    let mut abort = Vec::new();
    let tails = (roles.projectors && p.kafka.is_none()) || roles.relay || roles.saga;
    if p.read_db.is_postgres() && tails {
        let url = settings.database_url();
        abort.push(readmodel::listen_postgres(
            url,
            "shopstream_events",
            p.wake.clone(),
        ));
    }
    if roles.query && !roles.projectors {
        if p.read_db.is_postgres() {
            let url = settings.database_url();
            let commits = p.commits.clone();
            abort.push(readmodel::listen_postgres(
                url,
                "shopstream_projections",
                commits,
            ));
        }
        // A missed notification (reconnect) delays a waiter by at most a second.
        let commits = p.commits.clone();
        abort.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                commits.notify();
            }
        }));
    }
    Background {
        stop: None,
        join: Vec::new(),
        abort,
    }
}

/// The projections: Kafka-fed when Kafka is configured, else tailing the store.
fn projectors(p: &Platform, settings: &Settings) -> Background {
    let running = match &p.kafka {
        Some(kafka) => {
            tracing::info!(projections = ?readmodel::NAMES, brokers = %kafka.brokers, "projectors consuming Kafka");
            projections::start_kafka(kafka, &p.read_db, &p.commits)
        }
        None => {
            tracing::info!(projections = ?readmodel::NAMES, "projectors tailing the store");
            let linger = settings
                .projectors
                .as_ref()
                .map_or(projectors::engine::LINGER, |a| a.projection_linger);
            projections::start(&p.db, &p.read_db, (&p.wake, &p.commits), linger)
        }
    };
    let (stop, join) = running.into_parts();
    Background {
        stop: Some(stop),
        join,
        abort: Vec::new(),
    }
}

/// The saga, and the simulated payment provider when configured.
fn saga(
    p: &Platform,
    settings: &Settings,
    commands: Arc<commands::Commands>,
) -> anyhow::Result<Background> {
    use crate::saga::simulator::{Simulator, SimulatorConfig};
    use crate::saga::{Saga, SagaConfig, SystemClock};
    let Some(s) = &settings.saga else {
        anyhow::bail!("no saga settings");
    };
    s.check(settings.production())?;
    let (stop, stopped) = watch::channel(false);
    let log = eventlog::EventLog::new(p.db.clone());
    let tick = Duration::from_millis(500);
    let config = SagaConfig {
        deadline: chrono::Duration::seconds(i64::from(s.payment_deadline_seconds)),
        max_retries: s.payment_retries,
    };
    let saga = Saga::new(
        commands.clone(),
        log.clone(),
        p.read_db.clone(),
        Arc::new(SystemClock),
        config,
    );
    let mut join = vec![tokio::spawn(saga.run(
        p.wake.clone(),
        tick,
        stopped.clone(),
    ))];
    tracing::info!("order-payment saga running");
    if s.simulate_payments {
        let config = SimulatorConfig {
            failure_rate: s.simulated_failure_rate,
            ..SimulatorConfig::default()
        };
        let simulator = Simulator::new(commands, log, p.read_db.clone(), config);
        join.push(tokio::spawn(simulator.run(p.wake.clone(), tick, stopped)));
        tracing::info!("simulated payment provider running");
    }
    Ok(Background {
        stop: Some(stop),
        join,
        abort: Vec::new(),
    })
}
