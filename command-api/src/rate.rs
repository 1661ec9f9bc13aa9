//! Rate limits of the REST commands, as a middleware in front of the
//! idempotency layer (a refused request touches nothing): the public
//! sign-up per client address, every other command per verified subject
//! (per address when the token is missing or invalid; such requests are
//! refused anyway). Over the budget: `429` problem document with
//! `Retry-After`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::rate::{client_address, Limited, Limiter, PeerAddr};
use crate::auth::{caller, Authenticator};
use crate::error::problem;

/// Sign-ups per client address and minute, by default.
pub const DEFAULT_SIGNUPS_PER_MINUTE: u32 = 20;
/// Commands per subject and minute, by default.
pub const DEFAULT_COMMANDS_PER_MINUTE: u32 = 1200;

/// The budgets and who may speak for a client's address.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// `POST /v1/users`, per client address.
    pub signup: Limiter,
    /// Every other command, per subject.
    pub commands: Limiter,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl RateLimits {
    /// The given budgets per minute (0 turns a class off).
    pub fn new(signups: u32, commands: u32, trusted_proxies: Vec<IpAddr>) -> Self {
        Self {
            signup: Limiter::new("signup", signups),
            commands: Limiter::new("commands", commands),
            trusted_proxies,
        }
    }
}

/// Off: an embedding application (or a test) opts in; the binary's flags
/// turn the limits on by default.
impl Default for RateLimits {
    fn default() -> Self {
        Self::new(0, 0, Vec::new())
    }
}

/// The middleware's state.
#[derive(Clone)]
pub struct RateState {
    /// The budgets.
    pub limits: Arc<RateLimits>,
    /// Verifies tokens, to key commands by subject.
    pub auth: Arc<Authenticator>,
}

/// The `429` answer.
pub fn too_many(class: &str, limited: Limited) -> Response {
    telemetry::metrics::count(
        "rate_limited_total",
        "Requests refused for their caller's rate limit, by class.",
        &[("class", class)],
        1.0,
    );
    let mut response = problem(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        &format!(
            "too many {class} requests from this caller; retry in {} s",
            limited.retry_after_secs
        ),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&limited.retry_after_secs.to_string()) {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, v);
    }
    response
}

/// The middleware; see the module docs.
pub async fn rate_limit(State(s): State<RateState>, mut req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    let address = client_address(
        peer,
        req.headers().get("x-forwarded-for"),
        &s.limits.trusted_proxies,
    )
    .map_or_else(|| "unknown".to_string(), |a| a.to_string());
    let path = req.uri().path();
    let signup = req.method() == Method::POST && (path == "/users" || path == "/v1/users");
    let (limiter, key) = if signup {
        (&s.limits.signup, format!("ip:{address}"))
    } else {
        let headers = req.headers().clone();
        match caller(&s.auth, &headers, req.extensions_mut()).await {
            Ok(p) => (&s.limits.commands, format!("sub:{}", p.scope())),
            Err(_) => (&s.limits.commands, format!("ip:{address}")),
        }
    };
    match limiter.check(&key, 1) {
        Ok(()) => next.run(req).await,
        Err(limited) => too_many(limiter.class(), limited),
    }
}
