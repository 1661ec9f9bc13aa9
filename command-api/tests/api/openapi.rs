//! The OpenAPI document: generated from the code, checked in, valid.
//!
//! Regenerate the checked-in copy after an API change with
//! `cargo run -- openapi > command-api/openapi.json`.

use std::collections::HashSet;

use serde_json::Value;

const CHECKED_IN: &str = include_str!("../../openapi.json");

#[test]
fn document_matches_the_checked_in_copy() {
    let generated = command_api::openapi::document();
    assert!(
        generated.trim() == CHECKED_IN.trim(),
        "command-api/openapi.json is out of date: run `cargo run -- openapi > command-api/openapi.json`"
    );
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    if let Some(r) = child.as_str() {
                        out.push(r);
                    }
                } else {
                    collect_refs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

#[test]
fn document_is_valid_openapi_3_1() {
    let doc: Value = serde_json::from_str(&command_api::openapi::document()).expect("JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "openapi version"
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        assert!(resolve(&doc, r).is_some(), "dangling $ref {r}");
    }

    let methods = ["get", "put", "post", "delete", "patch"];
    let mut operation_ids = HashSet::new();
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path}");
        let templated: HashSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().expect("path item") {
            assert!(methods.contains(&method.as_str()), "{method} {path}");
            let id = op["operationId"].as_str().expect("operationId");
            assert!(
                operation_ids.insert(id.to_string()),
                "duplicate operationId {id}"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            for status in responses.keys() {
                assert!(
                    status.len() == 3 && status.parse::<u16>().is_ok(),
                    "bad status {status}"
                );
            }
            let declared: HashSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, templated, "path parameters of {method} {path}");
        }
    }
    // The contract's endpoints are all documented.
    for path in [
        "/v1/users",
        "/v1/users/{id}",
        "/v1/users/{id}/deactivate",
        "/v1/users/{id}/reactivate",
        "/v1/products",
        "/v1/products/{sku}",
        "/v1/products/{sku}/retire",
        "/v1/orders",
        "/v1/orders/{id}/items",
        "/v1/orders/{id}/items/{sku}",
        "/v1/orders/{id}/place",
        "/v1/orders/{id}/cancel",
        "/v1/orders/{id}/mark-paid",
        "/v1/orders/{id}/ship",
        "/v1/orders/{id}/deliver",
        "/v1/payments",
        "/v1/payments/{id}/authorize",
        "/v1/payments/{id}/capture",
        "/v1/payments/{id}/fail",
        "/v1/payments/{id}/refund",
        "/v1/users/{id}/events",
        "/v1/orders/{id}/events",
        "/v1/payments/{id}/events",
        "/v1/products/{id}/events",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
}
