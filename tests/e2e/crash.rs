//! Invariant 4 with real processes: a `projectors` process killed with
//! SIGKILL at random moments while events stream in loses and duplicates
//! nothing — afterwards every read model equals a from-scratch rebuild.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eventlog::testing::TestDatabase;
use eventlog::EventLog;
use projectors::rebuild::{self, Options};
use projectors::testing::Shop;
use rand::Rng;
use readmodel::ReadDb;

const PROJECTORS: &str = env!("CARGO_BIN_EXE_projectors");

fn start_projectors(url: &str, data_dir: &std::path::Path) -> Child {
    Command::new(PROJECTORS)
        .arg("--database-url")
        .arg(url)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn projectors")
}

async fn killed_projectors_lose_and_duplicate_nothing(t: &TestDatabase) {
    let data = tempfile::tempdir().expect("tempdir");
    eventlog::testing::install_keys(data.path());
    let log = EventLog::new(t.db.clone());
    let writer_db = t.db.clone();
    let writer = tokio::spawn(async move {
        let mut shop = Shop::new(&writer_db, 42);
        for _ in 0..40 {
            shop.activity(1, 2).await;
        }
    });
    let mut rng = rand::thread_rng();
    for _ in 0..20 {
        let mut child = start_projectors(&t.url, data.path());
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..400))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    writer.await.expect("writer");

    // A last projector catches up to the head.
    let mut child = start_projectors(&t.url, data.path());
    let db = ReadDb::connect(&t.url, 4)
        .await
        .expect("read db")
        .with_keys(t.keys());
    let head = log.head().await.expect("head");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = readmodel::status::all(&log, &db).await.expect("status");
        if status.iter().all(|s| s.position == head) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projectors did not catch up: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    for name in readmodel::NAMES {
        let mut progress = |_p: rebuild::Progress| {};
        let report = rebuild::rebuild(name, &log, &db, Options::new(true, &mut progress))
            .await
            .unwrap_or_else(|e| panic!("{name} after the crashes differs from a rebuild: {e:?}"));
        assert!(report.diff.iter().all(|d| d.same()));
        assert!(
            report.diff.iter().any(|d| d.live_rows > 0),
            "{name} is empty"
        );
    }
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_crashes_on_postgres() {
    let t = TestDatabase::postgres().await;
    killed_projectors_lose_and_duplicate_nothing(&t).await;
    t.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_crashes_on_sqlite() {
    let t = TestDatabase::sqlite().await;
    killed_projectors_lose_and_duplicate_nothing(&t).await;
}
