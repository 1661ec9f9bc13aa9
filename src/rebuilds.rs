//! Rebuilds started over HTTP (admin; the console's Operations page), run
//! in the serving process exactly as `projections rebuild` runs them: a
//! shadow generation folded from the log while the live one keeps
//! answering, compared table by table, then swapped in.
//!
//! - `POST /v1/admin/projections/{name}/rebuild` (body optional:
//!   `{"verify": true}` refuses the swap when a same-version rebuild
//!   differs) → `202` with the job and `Location: /v1/admin/rebuilds/{id}`;
//!   `409 rebuild_running` while one of that projection runs.
//! - `GET /v1/admin/rebuilds` (newest first) and `GET /v1/admin/rebuilds/{id}`:
//!   state (`running`, `swapped`, `refused`, `failed`), progress (events,
//!   position, head, events/s, ETA) and, once compared, the diff summary.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use command_api::error::ApiError;
use eventlog::EventLog;
use projectors::rebuild::{self, Options, Progress, TableDiff};
use readmodel::ReadDb;
use serde::{Deserialize, Serialize};

/// Jobs kept for `GET` after they end.
const KEPT: usize = 20;

/// One rebuild started over HTTP.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    pub projection: String,
    pub verify: bool,
    /// `running`, `swapped`, `refused` (`verify` found a difference) or `failed`.
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub events: u64,
    pub position: i64,
    pub head: i64,
    pub events_per_second: f64,
    pub eta_seconds: Option<u64>,
    pub generation: Option<i64>,
    pub previous_generation: Option<i64>,
    /// Live vs rebuilt, per table (rows and checksums), compared before the swap.
    pub diff: Vec<TableDiff>,
    pub error: Option<String>,
}

/// The jobs of this process.
#[derive(Clone, Default)]
pub struct Jobs(Arc<Mutex<JobList>>);

#[derive(Default)]
struct JobList {
    next: u64,
    jobs: VecDeque<Job>,
}

impl Jobs {
    fn update(&self, id: u64, f: impl FnOnce(&mut Job)) {
        let mut list = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(job) = list.jobs.iter_mut().find(|j| j.id == id) {
            f(job);
        }
    }

    /// Registers a job for `projection`, unless one of it is running (its id).
    fn begin(&self, projection: &str, verify: bool) -> Result<Job, u64> {
        let mut list = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(running) = list
            .jobs
            .iter()
            .find(|j| j.projection == projection && j.state == "running")
        {
            return Err(running.id);
        }
        list.next += 1;
        let job = Job {
            id: list.next,
            projection: projection.to_string(),
            verify,
            state: "running".into(),
            started_at: Utc::now(),
            finished_at: None,
            events: 0,
            position: 0,
            head: 0,
            events_per_second: 0.0,
            eta_seconds: None,
            generation: None,
            previous_generation: None,
            diff: Vec::new(),
            error: None,
        };
        list.jobs.push_front(job.clone());
        while list.jobs.len() > KEPT {
            // Drop the oldest finished job (a running one is never dropped).
            match list.jobs.iter().rposition(|j| j.state != "running") {
                Some(i) => drop(list.jobs.remove(i)),
                None => break,
            }
        }
        Ok(job)
    }

    fn list(&self) -> Vec<Job> {
        let list = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        list.jobs.iter().cloned().collect()
    }

    fn get(&self, id: u64) -> Option<Job> {
        self.list().into_iter().find(|j| j.id == id)
    }
}

/// What `POST …/rebuild` may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RebuildBody {
    #[serde(default)]
    verify: bool,
}

/// Starts a rebuild of `name` in the background.
pub(crate) fn start(
    jobs: &Jobs,
    store: &eventlog::Database,
    db: &ReadDb,
    name: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    if !readmodel::NAMES.contains(&name) {
        return Err(ApiError::not_found(format!(
            "no projection named '{name}' (one of: {})",
            readmodel::NAMES.join(", ")
        )));
    }
    let body: RebuildBody = if body.iter().all(u8::is_ascii_whitespace) {
        RebuildBody::default()
    } else {
        command_api::extract::parse_json(body)?
    };
    let job = match jobs.begin(name, body.verify) {
        Ok(job) => job,
        Err(running) => {
            let detail =
                format!("a rebuild of {name} is running (job {running}); wait for it to end");
            return Ok(command_api::error::problem(
                StatusCode::CONFLICT,
                "rebuild_running",
                &detail,
            )
            .into_response());
        }
    };
    tokio::spawn(run(jobs.clone(), store.clone(), db.clone(), job.clone()));
    let location = format!("/v1/admin/rebuilds/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(job),
    )
        .into_response())
}

async fn run(jobs: Jobs, store: eventlog::Database, db: ReadDb, job: Job) {
    let id = job.id;
    // The same gate as `projections rebuild`: nothing this binary cannot read.
    if let Err(e) = eventlog::census::check_readable(&store).await {
        jobs.update(id, |j| {
            j.finished_at = Some(Utc::now());
            j.state = "failed".into();
            j.error = Some(e.to_string());
        });
        return;
    }
    let log = EventLog::new(store);
    let progress_jobs = jobs.clone();
    let mut progress = move |p: Progress| {
        progress_jobs.update(id, |j| {
            j.events = p.events;
            j.position = p.position;
            j.head = p.head;
            j.events_per_second = p.rate();
            j.eta_seconds = Some(p.eta().as_secs());
        });
    };
    let options = Options::new(job.verify, &mut progress);
    let result = rebuild::rebuild(&job.projection, &log, &db, options).await;
    jobs.update(id, |j| {
        j.finished_at = Some(Utc::now());
        j.eta_seconds = Some(0);
        match result {
            Ok(report) => {
                j.state = "swapped".into();
                j.events = report.events;
                j.events_per_second = report.events_per_second;
                j.generation = Some(report.generation);
                j.previous_generation = report.previous_generation;
                j.diff = report.diff;
            }
            Err(rebuild::RebuildError::Differs(_, diff)) => {
                j.state = "refused".into();
                j.diff = diff;
                j.error = Some("the rebuild differs from the live version; not swapped".into());
            }
            Err(e) => {
                tracing::warn!(job = id, error = %e, "rebuild failed");
                j.state = "failed".into();
                j.error = Some(e.to_string());
            }
        }
    });
}

/// `GET /v1/admin/rebuilds`.
pub(crate) fn list(jobs: &Jobs) -> Response {
    axum::Json(serde_json::json!({ "rebuilds": jobs.list() })).into_response()
}

/// `GET /v1/admin/rebuilds/{id}`.
pub(crate) fn one(jobs: &Jobs, id: &str) -> Result<Response, ApiError> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| jobs.get(id))
        .map(|j| axum::Json(j).into_response())
        .ok_or_else(|| ApiError::not_found(format!("no rebuild job {id}")))
}
