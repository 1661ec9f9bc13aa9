//! A page of orders with their items costs a fixed number of SQL
//! statements, whatever the page size (no N+1).

use async_graphql::Request;
use auth::{Principal, Role};
use eventlog::testing::TestDatabase;
use eventlog::EventLog;
use projectors::engine::{apply_batch, ensure_live};
use projectors::testing::Shop;
use query_api::schema::{StatusSource, Viewer};
use query_api::store::Store;
use readmodel::{OrderViewProjection, ReadDb, Wake};

async fn statements_for(
    schema: &query_api::schema::ApiSchema,
    store: &Store,
    first: usize,
) -> (u64, usize) {
    let before = store.statements();
    let query = format!("{{ orders(first: {first}) {{ edges {{ node {{ id items {{ sku quantity lineTotal {{ amountMinor }} }} payment {{ capturedMinor }} history {{ status }} }} }} }} }}");
    let admin = Principal::new("ops", Role::Admin);
    let response = schema
        .execute(Request::new(query).data(Viewer(Some(admin))))
        .await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let json = response.data.into_json().expect("json");
    let edges = json["orders"]["edges"].as_array().map_or(0, Vec::len);
    (store.statements() - before, edges)
}

#[tokio::test]
async fn order_pages_cost_the_same_statements_whatever_their_size() {
    let t = TestDatabase::sqlite().await;
    let mut shop = Shop::new(&t.db, 5);
    shop.activity(4, 30).await;
    let log = EventLog::new(t.db.clone());
    let db = ReadDb::connect(&t.url, 2).await.expect("read db");
    let live = ensure_live::<OrderViewProjection>(&db).await.expect("live");
    let events = log.read_from(live.cursor, 10_000).await.expect("read");
    apply_batch::<OrderViewProjection>(&db, live.generation, live.cursor, &events)
        .await
        .expect("fold");
    projectors::ensure_all(&db).await.expect("views");

    let store = Store::new(db.pool().clone());
    let status = StatusSource {
        log,
        db: db.clone(),
    };
    let schema = query_api::schema(
        store.clone(),
        status,
        Wake::default(),
        &query_api::Config::default(),
    );
    let (small, n_small) = statements_for(&schema, &store, 2).await;
    let (large, n_large) = statements_for(&schema, &store, 30).await;
    assert_eq!((n_small, n_large), (2, 30));
    assert_eq!(
        small, large,
        "a page of 30 orders with items must cost what a page of 2 costs"
    );
    assert_eq!(large, 1);
}
