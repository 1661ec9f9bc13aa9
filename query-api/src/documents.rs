//! Parsed documents kept by their text. Frontends send the same few
//! queries over and over; parsing one (async-graphql's pest parser) is a
//! share of every request's work, so a query text seen before is not
//! parsed again. The text checks of [`crate::limits::InputLimits`] run
//! before this on every request, and validation (depth, complexity,
//! types against the variables) after it, as without it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, Variables};

/// Documents kept before the cache starts over.
const KEPT: usize = 512;
/// Longer query texts are parsed every time (rare, and not worth keeping).
const LONGEST: usize = 8 * 1024;

/// The parsed documents of one schema, shared by its requests.
#[derive(Clone, Default)]
pub struct Documents {
    kept: Arc<Mutex<HashMap<String, ExecutableDocument>>>,
}

impl Documents {
    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(query).cloned()
    }

    fn keep(&self, query: &str, document: &ExecutableDocument) {
        if query.len() > LONGEST {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= KEPT {
            kept.clear();
        }
        kept.insert(query.to_string(), document.clone());
    }
}

impl ExtensionFactory for Documents {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for Documents {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Some(document) = self.get(query) {
            return Ok(document);
        }
        let document = next.run(ctx, query, variables).await?;
        self.keep(query, &document);
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn twice(&self, n: i32) -> i32 {
            n * 2
        }
    }

    /// Counts the parses that reach the parser.
    #[derive(Clone, Default)]
    struct Parses(Arc<AtomicUsize>);

    impl ExtensionFactory for Parses {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(self.clone())
        }
    }

    #[async_trait::async_trait]
    impl Extension for Parses {
        async fn parse_query(
            &self,
            ctx: &ExtensionContext<'_>,
            query: &str,
            variables: &Variables,
            next: NextParseQuery<'_>,
        ) -> ServerResult<ExecutableDocument> {
            self.0.fetch_add(1, Ordering::SeqCst);
            next.run(ctx, query, variables).await
        }
    }

    #[tokio::test]
    async fn a_query_seen_before_is_not_parsed_again_and_answers_the_same() {
        let parses = Parses::default();
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(Documents::default())
            .extension(parses.clone())
            .finish();
        let q = "query($n: Int!) { twice(n: $n) }";
        let ask = |n: i32| {
            async_graphql::Request::new(q)
                .variables(Variables::from_json(serde_json::json!({"n": n})))
        };
        let first = schema.execute(ask(2)).await;
        let second = schema.execute(ask(5)).await;
        assert_eq!(first.data.to_string(), "{twice: 4}");
        assert_eq!(second.data.to_string(), "{twice: 10}");
        assert_eq!(parses.0.load(Ordering::SeqCst), 1, "parsed once");
        // Another text is parsed; a broken one is refused every time, never kept.
        let other = schema.execute("{ twice(n: 1) }").await;
        assert_eq!(other.data.to_string(), "{twice: 2}");
        for _ in 0..2 {
            let broken = schema.execute("{ twice(n: ").await;
            assert!(!broken.errors.is_empty());
        }
        assert_eq!(parses.0.load(Ordering::SeqCst), 4);
        // Validation still runs on a kept document: a wrong variable type.
        let wrong = schema
            .execute(
                async_graphql::Request::new(q)
                    .variables(Variables::from_json(serde_json::json!({"n": "x"}))),
            )
            .await;
        assert!(!wrong.errors.is_empty(), "{:?}", wrong.data);
    }
}
