//! Per-caller GraphQL budgets, weighted by each operation's complexity.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory};
use async_graphql::ServerError;

/// Complexity points per caller and minute, by default (a typical query
/// costs 10–50: some thousand queries a minute).
pub const DEFAULT_COMPLEXITY_PER_MINUTE: u32 = 60_000;

/// Whose GraphQL budget a request spends (request or connection data).
#[derive(Debug, Clone)]
pub struct RateKey(pub String);

/// Charges each operation's complexity (at least 1) to its caller's
/// budget after validation, before execution: `RATE_LIMITED` when it does
/// not fit, with `retryAfter` seconds in the extensions.
#[derive(Debug, Clone)]
pub struct RateLimit(pub auth::rate::Limiter);

impl ExtensionFactory for RateLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for RateLimit {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: async_graphql::extensions::NextValidation<'_>,
    ) -> Result<async_graphql::ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let key = ctx
            .data_opt::<RateKey>()
            .map_or("unknown", |k| k.0.as_str());
        let cost = u32::try_from(result.complexity.max(1)).unwrap_or(u32::MAX);
        match self.0.check(key, cost) {
            Ok(()) => Ok(result),
            Err(limited) => {
                telemetry::metrics::count(
                    "rate_limited_total",
                    "Requests refused for their caller's rate limit, by class.",
                    &[("class", "graphql")],
                    1.0,
                );
                let mut err = ServerError::new(
                    format!(
                        "too many GraphQL requests from this caller (weighted by complexity); retry in {} s",
                        limited.retry_after_secs
                    ),
                    None,
                );
                let mut ext = async_graphql::ErrorExtensionValues::default();
                ext.set("code", RATE_LIMITED);
                ext.set("retryAfter", limited.retry_after_secs);
                err.extensions = Some(ext);
                Err(vec![err])
            }
        }
    }
}

/// The code of a rate-limited operation.
pub const RATE_LIMITED: &str = "RATE_LIMITED";
