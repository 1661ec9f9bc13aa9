//! The crate graph, read from `cargo metadata`: dependencies point one way
//! (services → eventlog → domain), and the edges that would let a room reach
//! into another's internals fail this test. The README's architecture
//! section draws the same graph.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Package name → the names of its normal (non-dev, non-build) dependencies.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The host's target triple (`rustc -vV`): the graph that gets built here.
fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc names its host")
        .to_string()
}

fn graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Filtered to the host, so no other platform's dependency is needed
    // (and nothing is downloaded).
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let mut graph = Graph::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve graph") {
        let from = names[node["id"].as_str().expect("id")].to_string();
        let deps = graph.entry(from).or_default();
        for dep in node["deps"].as_array().expect("deps") {
            let normal = dep["dep_kinds"]
                .as_array()
                .expect("dep kinds")
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                deps.insert(names[dep["pkg"].as_str().expect("pkg")].to_string());
            }
        }
    }
    graph
}

fn direct<'a>(g: &'a Graph, package: &str) -> &'a BTreeSet<String> {
    g.get(package)
        .unwrap_or_else(|| panic!("no package {package}"))
}

/// Everything `package` links, directly or not.
fn reachable(g: &Graph, package: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = direct(g, package).iter().map(String::as_str).collect();
    while let Some(p) = todo.pop() {
        if seen.insert(p.to_string()) {
            todo.extend(direct(g, p).iter().map(String::as_str));
        }
    }
    seen
}

/// The forbidden edges `package` has: `forbidden` among its direct
/// dependencies, `forbidden_anywhere` anywhere below it.
fn violations(
    g: &Graph,
    package: &str,
    forbidden: &[&str],
    forbidden_anywhere: &[&str],
) -> Vec<String> {
    let near = direct(g, package);
    let far = reachable(g, package);
    let mut found: Vec<String> = forbidden
        .iter()
        .filter(|f| near.contains(**f))
        .map(|f| format!("{package} → {f}"))
        .collect();
    found.extend(
        forbidden_anywhere
            .iter()
            .filter(|f| far.contains(**f))
            .map(|f| format!("{package} → … → {f}")),
    );
    found
}

const WORKSPACE: &[&str] = &[
    "domain",
    "eventlog",
    "telemetry",
    "readmodel",
    "projectors",
    "relay",
    "commands",
    "auth",
    "command-api",
    "query-api",
    "bench",
];

#[test]
fn dependencies_point_one_way() {
    let g = graph();
    let mut found = Vec::new();
    // The domain is pure: no IO, no HTTP, no SQL, no Kafka. (cqrs-es, its
    // one framework, brings tokio along; the domain itself does not use it.)
    found.extend(violations(
        &g,
        "domain",
        &["sqlx", "tokio", "axum", "rdkafka", "async-graphql", "hyper"],
        &[
            "sqlx",
            "axum",
            "rdkafka",
            "async-graphql",
            "hyper",
            "eventlog",
        ],
    ));
    // The event store is the event store: no Kafka, no HTTP, no OTLP.
    found.extend(violations(
        &g,
        "eventlog",
        &[],
        &[
            "rdkafka",
            "axum",
            "hyper",
            "opentelemetry-otlp",
            "telemetry",
            "readmodel",
        ],
    ));
    // The read models are the contract, not the engine that runs them.
    found.extend(violations(
        &g,
        "readmodel",
        &[],
        &["projectors", "relay", "rdkafka", "axum", "async-graphql"],
    ));
    // The query API reads read models; it never runs projections.
    found.extend(violations(
        &g,
        "query-api",
        &[],
        &["projectors", "relay", "rdkafka", "commands", "command-api"],
    ));
    // The command core is transport-neutral (hyper does sit below it, in
    // the OTLP exporter's HTTP client that telemetry brings).
    found.extend(violations(
        &g,
        "commands",
        &["hyper", "reqwest"],
        &[
            "axum",
            "async-graphql",
            "rdkafka",
            "readmodel",
            "projectors",
            "command-api",
        ],
    ));
    // Nothing depends on the binary.
    for package in WORKSPACE {
        found.extend(violations(&g, package, &[], &["shopstream"]));
    }
    assert!(
        found.is_empty(),
        "forbidden dependencies:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_forbidden_edge() {
    // The graph is read for real: the binary does link the query API, and
    // the relay does link librdkafka's crate.
    let g = graph();
    assert!(direct(&g, "shopstream").contains("query-api"));
    assert_eq!(
        violations(&g, "relay", &[], &["rdkafka"]),
        vec!["relay → … → rdkafka".to_string()]
    );
}
