//! Archives: an import run again finds the events the store already holds
//! (it resumes), even while a transaction is open elsewhere on the server.

use eventlog::testing::TestDatabase;
use eventlog::{archive, EventLog, Repository};

use crate::helpers::create_product;

/// The safe horizon is cluster-wide: a transaction open on another
/// database of the same server hides every event committed after it began
/// from a tailer's reads. An import's target is no tailer, so an import run
/// again must still see all it wrote and resume after it (before, it saw
/// none, re-sent the whole archive and reported no resume).
#[tokio::test]
async fn an_import_run_again_resumes_while_another_database_has_a_transaction_open() {
    let source = TestDatabase::postgres().await;
    let repo = Repository::<domain::Product>::new(&source.db, 0, 0);
    for sku in ["ARC-1", "ARC-2", "ARC-3"] {
        create_product(&repo, sku).await.expect("append");
    }
    let file = std::env::temp_dir().join(format!(
        "shopstream-archive-test-{}-{:?}.ndjson",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    let (exported, checksum) = archive::export(&source.db, &file, 2).await.expect("export");
    assert_eq!(exported, 3);

    // A transaction with an id, open on the source database throughout.
    let holder = source.hold_horizon().await;

    let target = TestDatabase::postgres().await;
    let first = archive::import(&target.db, &file, 2).await.expect("import");
    assert_eq!((first.events, first.resumed), (3, 0));
    let again = archive::import(&target.db, &file, 2)
        .await
        .expect("import again");
    assert_eq!(
        (again.events, again.resumed, again.checksum),
        (3, 3, checksum),
        "the second import found what the first wrote"
    );
    let held = EventLog::new(target.db.clone())
        .read_settled_from(eventlog::Cursor::START, 100)
        .await
        .expect("read");
    assert_eq!(held.len(), 3, "nothing was appended twice");

    holder.rollback().await.expect("rollback");
    let _ = std::fs::remove_file(&file);
    target.drop_database().await;
    source.drop_database().await;
}
