//! The HTTP side of `/graphql`: media-type negotiation (GraphQL over
//! HTTP), the query handler (input bounds, authentication, consistency
//! wait, execution under the time limit, status codes), the WebSocket
//! handler (origin check, connection init) and GraphiQL.

use std::sync::Arc;

use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use auth::authenticate;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::limits::{self, ConnectionSubscriptions};
use crate::schema::Viewer;
use crate::{error, QueryState};

/// An error answer in the same media type as every other GraphQL answer.
fn error_response(code: &str, message: &str) -> Response {
    let mut err = async_graphql::ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    err.extensions = Some(ext);
    GraphQLResponse::from(async_graphql::Response::from_errors(vec![err])).into_response()
}

/// The media type a GraphQL answer is sent in (GraphQL over HTTP):
/// `application/graphql-response+json` unless the client accepts only
/// `application/json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    GraphqlResponse,
    Json,
}

/// Reads `Accept` as GraphQL over HTTP asks: the newer
/// `application/graphql-response+json` when the client names it, else
/// `application/json` (also for `*/*` or no `Accept`, which older clients
/// send); `None` when the client accepts neither.
fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let Some(accept) = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Some(Media::Json);
    };
    let types: Vec<String> = accept
        .split(',')
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    let has = |t: &str| types.iter().any(|x| x == t);
    if has("application/graphql-response+json") {
        Some(Media::GraphqlResponse)
    } else if has("application/json") || has("*/*") || has("application/*") {
        Some(Media::Json)
    } else {
        None
    }
}

pub(crate) async fn graphql(
    State(s): State<Arc<QueryState>>,
    peer: Option<axum::Extension<auth::rate::PeerAddr>>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let Some(media) = negotiate(&headers) else {
        return error::refusal(
            axum::http::StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "GraphQL answers are application/graphql-response+json or application/json",
        );
    };
    // GraphQL over HTTP: a POST says what it carries.
    let json_body = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json" || essence == "application/graphql-response+json"
        });
    if !json_body {
        return error::refusal(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a GraphQL POST must be Content-Type: application/json",
        );
    }
    let mut response = answer_in_time(&s, peer, &headers, media, request).await;
    if media == Media::Json
        && response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|v| {
                v.as_bytes()
                    .starts_with(b"application/graphql-response+json")
            })
    {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
    }
    response
}

async fn answer_in_time(
    s: &QueryState,
    peer: Option<axum::Extension<auth::rate::PeerAddr>>,
    headers: &HeaderMap,
    media: Media,
    request: GraphQLRequest,
) -> Response {
    let address = auth::rate::client_address(
        peer.map(|p| p.0 .0.ip()),
        headers.get("x-forwarded-for"),
        &s.config.trusted_proxies,
    );
    // The limit covers the whole answer: the consistency wait, waits for a
    // database connection, and execution.
    let limit = s.config.query_timeout;
    let answered = answer(s, headers, address, media, request.into_inner());
    match tokio::time::timeout(limit, answered).await {
        Ok(response) => response,
        Err(_) => error_response(
            "TIMEOUT",
            &format!("the query took longer than {} ms", limit.as_millis()),
        ),
    }
}

async fn answer(
    s: &QueryState,
    headers: &HeaderMap,
    address: Option<std::net::IpAddr>,
    media: Media,
    mut request: async_graphql::Request,
) -> Response {
    if let Err(e) = s.config.input.check(&request.query, &request.variables) {
        return error_response("BAD_USER_INPUT", &e.to_string());
    }
    let viewer = if headers.contains_key(axum::http::header::AUTHORIZATION) {
        match authenticate(&s.auth, headers).await {
            Ok(p) => Some(p),
            Err(auth::AuthError::Unavailable(m)) => return error_response("UNAVAILABLE", &m),
            Err(e) => return error_response("UNAUTHENTICATED", &e.to_string()),
        }
    } else {
        None
    };
    let Ok(token) = consistency_token(headers) else {
        return error_response(
            "BAD_USER_INPUT",
            "X-Consistency-Token must be a position (a non-negative integer)",
        );
    };
    let touched = s.consistency.touched(&request.query);
    let reflected = match s.consistency.wait(token, &touched).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "consistency check failed");
            return error_response(
                "UNAVAILABLE",
                "the read models cannot be reached; try again shortly",
            );
        }
    };
    // A caller's budget: its subject, or its address when anonymous.
    let key = match (&viewer, address) {
        (Some(p), _) => format!("sub:{}", p.scope()),
        (None, Some(a)) => format!("ip:{a}"),
        (None, None) => "ip:unknown".to_string(),
    };
    request = request.data(limits::RateKey(key));
    request = request.data(Viewer(viewer));
    let promised = crate::cache::Promised::new(reflected.position, token);
    request = request.data(promised.clone());
    let started = std::time::Instant::now();
    let mut response = s.schema.execute(request).await;
    // Lower than `reflected` when a kept answer from an earlier position
    // was used (never below the token).
    let consistency = async_graphql::Value::from_json(serde_json::json!({
        "position": promised.position(),
        "stale": reflected.stale,
    }))
    .unwrap_or_default();
    response
        .extensions
        .insert("consistency".to_string(), consistency);
    record(&response, reflected.stale, started);
    into_http(response, media)
}

/// `X-Consistency-Token`: a position, when sent; `Err` for anything else.
fn consistency_token(headers: &HeaderMap) -> Result<Option<i64>, ()> {
    match headers
        .get("x-consistency-token")
        .map(|v| v.to_str().ok().and_then(|t| t.trim().parse::<i64>().ok()))
    {
        None => Ok(None),
        Some(Some(p)) if p >= 0 => Ok(Some(p)),
        Some(_) => Err(()),
    }
}

/// An operation's latency and outcome in the metrics.
fn record(response: &async_graphql::Response, stale: bool, started: std::time::Instant) {
    let outcome = if response.errors.is_empty() {
        "ok"
    } else {
        "error"
    };
    telemetry::metrics::observe_seconds(
        "graphql_request_duration_seconds",
        "GraphQL operation latency.",
        &[("outcome", outcome)],
        started.elapsed().as_secs_f64(),
    );
    telemetry::metrics::count(
        "graphql_requests_total",
        "GraphQL operations by outcome.",
        &[("outcome", outcome)],
        1.0,
    );
    if stale {
        telemetry::metrics::count(
            "graphql_stale_total",
            "Queries answered before their consistency token was reached.",
            &[],
            1.0,
        );
    }
}

/// The HTTP answer of a GraphQL response, as GraphQL over HTTP asks.
fn into_http(response: async_graphql::Response, media: Media) -> Response {
    let retry_after = response.errors.iter().find_map(|e| {
        let ext = e.extensions.as_ref()?;
        (ext.get("code") == Some(&async_graphql::Value::from(limits::RATE_LIMITED)))
            .then(|| ext.get("retryAfter").map(ToString::to_string))
            .flatten()
    });
    // A document that does not parse or validate, or variables that do not
    // coerce, never executed: with the newer media type that is a 400
    // without a `data` entry (GraphQL over HTTP). Field errors carry a path.
    let request_error = matches!(response.data, async_graphql::Value::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let mut http = if request_error && media == Media::GraphqlResponse && retry_after.is_none() {
        let mut body = serde_json::to_value(&response).unwrap_or_default();
        if let Some(map) = body.as_object_mut() {
            map.remove("data");
        }
        let mut http = (axum::http::StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        http.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/graphql-response+json"),
        );
        http
    } else {
        GraphQLResponse::from(response).into_response()
    };
    if let Some(seconds) = retry_after {
        // 429 in the newer media type; `application/json` clients expect
        // 200 for every GraphQL answer and read the error's code.
        if media == Media::GraphqlResponse {
            *http.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
        }
        if let Ok(v) = axum::http::HeaderValue::from_str(&seconds) {
            http.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
    }
    http
}

/// Subscriptions over WebSocket (graphql-transport-ws or graphql-ws). The
/// token comes in the upgrade's `Authorization` header or in the
/// `connection_init` payload (`{"Authorization": "Bearer …"}`).
pub(crate) async fn graphql_ws(
    State(s): State<Arc<QueryState>>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // CORS does not cover WebSocket handshakes: refuse pages of other
    // origins here (cross-site WebSocket hijacking).
    if !s.config.origins.allows_websocket(
        headers.get(axum::http::header::ORIGIN),
        headers.get(axum::http::header::HOST),
    ) {
        return error::refusal(
            axum::http::StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this origin may not open the GraphQL WebSocket (--cors-origin)",
        );
    }
    let from_header = if headers.contains_key(axum::http::header::AUTHORIZATION) {
        match authenticate(&s.auth, &headers).await {
            Ok(p) => Some(p),
            Err(e) => return error::auth_refusal(e),
        }
    } else {
        None
    };
    let state = s.clone();
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let schema = state.schema.clone();
            let auth = state.auth.clone();
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let token = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    let viewer = match token {
                        Some(t) => {
                            let mut h = HeaderMap::new();
                            let value = t
                                .parse()
                                .map_err(|_| error::unauthenticated("invalid Authorization"))?;
                            h.insert(axum::http::header::AUTHORIZATION, value);
                            Some(authenticate(&auth, &h).await.map_err(error::auth)?)
                        }
                        None => from_header,
                    };
                    let mut data = Data::default();
                    let key = viewer.as_ref().map_or_else(
                        || "ip:websocket".to_string(),
                        |p| format!("sub:{}", p.scope()),
                    );
                    data.insert(limits::RateKey(key));
                    data.insert(Viewer(viewer));
                    data.insert(ConnectionSubscriptions::default());
                    Ok(data)
                })
                .serve()
        })
}

pub(crate) async fn graphiql(State(s): State<Arc<QueryState>>) -> Response {
    if s.config.introspection {
        web::graphiql_page()
    } else {
        (
            axum::http::StatusCode::NOT_FOUND,
            "GraphiQL is off in production",
        )
            .into_response()
    }
}
