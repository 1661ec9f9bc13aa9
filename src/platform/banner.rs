//! What a started process prints: where its API, docs and probes are. It
//! is for the person who started the server: stdout, not the log; a closed
//! stdout (`shopstream | head`) must not stop the server.

use std::io::Write;
use std::net::SocketAddr;

use super::Roles;
use crate::config::Settings;

/// Prints the banner of `roles`, listening on `addr`.
pub(super) fn print(
    settings: &Settings,
    roles: Roles,
    kafka: Option<&relay::kafka::KafkaSettings>,
    addr: SocketAddr,
) {
    let text = match roles {
        Roles::COMMANDS => format!(
            "\nshopstream command API\n\n  REST API      http://{addr}/v1\n  API docs      http://{addr}/docs\n  Health        http://{addr}/livez  http://{addr}/readyz\n\n"
        ),
        Roles::QUERY => format!(
            "\nshopstream query API\n\n  GraphQL       http://{addr}/graphql\n  Subscriptions ws://{addr}/graphql/ws\n  Console       http://{addr}/console\n\n"
        ),
        Roles::RELAY => {
            let (brokers, topic) = kafka.map_or(("-", "-"), |k| (&k.brokers[..], &k.topic[..]));
            format!(
                "\nshopstream relay (store → Kafka {brokers} topic {topic})\n\n  Health        http://{addr}/livez  http://{addr}/readyz\n  Metrics       http://{addr}/metrics\n\n"
            )
        }
        _ => platform(settings, kafka, addr),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// `serve`'s banner: every endpoint, the store, how to mint a token.
fn platform(
    settings: &Settings,
    kafka: Option<&relay::kafka::KafkaSettings>,
    addr: SocketAddr,
) -> String {
    let store = match &settings.store.database_url {
        None => format!(
            "embedded SQLite at {}",
            settings.data.sqlite_file().display()
        ),
        Some(url) if url.starts_with("sqlite:") => "SQLite".to_string(),
        Some(_) => "PostgreSQL".to_string(),
    };
    let base = format!("http://{addr}");
    let graphiql = if settings.production() {
        ""
    } else {
        "   (GraphiQL: open it in a browser)"
    };
    let mut text = format!(
        "\nshopstream is running ({store})\n\
         \n  REST API      {base}/v1\
         \n  API docs      {base}/docs   (OpenAPI document: {base}/openapi.json)\
         \n  GraphQL       {base}/graphql{graphiql}\
         \n  Console       {base}/console   (analytics, operations, customers, live orders)\
         \n  Health        {base}/livez  {base}/readyz\
         \n  Projections   {base}/v1/admin/projections (admin)   read models: customer_view, order_view, analytics\
         \n  Metrics       {base}/metrics\
         \n\nMint a token:   cargo run --release -- token --sub <user-id> --role customer|admin|service|analyst\
         \n                (same --data-dir / --jwt-secret as this server)\
         \nStop:           Ctrl-C\n\n"
    );
    if let Some(kafka) = kafka {
        text.push_str(&format!(
            "  Kafka         relay → {} topic {} ({} partitions); projectors consume it\n\n",
            kafka.brokers, kafka.topic, kafka.partitions
        ));
    }
    text
}
