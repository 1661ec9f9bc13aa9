//! Bounds on GraphQL input checked on the raw text, before anything parses
//! it. The parser (pest, in async-graphql) and the validators recurse once
//! per nesting level of a value literal (`[[[…]]]`, `{a:{a:…}}`) or per
//! fragment spread, so a 4 KB query could overflow a worker thread's stack
//! and abort the whole process. The selection depth limit runs after the
//! parse and cannot help; these checks run first, in linear time and
//! constant stack, for HTTP requests and WebSocket subscriptions alike
//! (through [`InputLimits`]).
//!
//! # Layout
//! - this file: [`InputLimits`], the text checks, as a function and an extension.
//! - `subscriptions`: caps on live subscriptions.
//! - `rate`: per-caller budgets weighted by complexity.

mod rate;
mod subscriptions;

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerError, ServerResult, Variables};

pub use rate::{RateKey, RateLimit, DEFAULT_COMPLEXITY_PER_MINUTE, RATE_LIMITED};
pub use subscriptions::{
    ConnectionSubscriptions, SubscriptionLimits, DEFAULT_SUBSCRIPTIONS_PER_CONNECTION,
    DEFAULT_SUBSCRIPTIONS_TOTAL,
};

/// Deepest nesting of `{`, `[` and `(` accepted in a query's text
/// (selection sets, argument lists, list and object literals together).
pub const DEFAULT_MAX_NESTING: usize = 64;

/// Most fragment definitions accepted in one document.
pub const DEFAULT_MAX_FRAGMENTS: usize = 64;

/// Deepest nesting accepted in the `variables` JSON.
pub const MAX_VARIABLE_NESTING: usize = 32;

/// Why a query was refused before it was parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputLimitError {
    /// Brackets nest deeper than the limit.
    #[error("the query nests deeper than {limit} levels of brackets (input nesting limit)")]
    Nesting { limit: usize },
    /// More fragment definitions than the limit.
    #[error("the query defines more than {limit} fragments (fragment limit)")]
    Fragments { limit: usize },
    /// The variables JSON nests deeper than the limit.
    #[error("the variables nest deeper than {limit} levels (input nesting limit)")]
    Variables { limit: usize },
}

/// The limits, as schema data and as the extension that enforces them.
#[derive(Debug, Clone, Copy)]
pub struct InputLimits {
    /// See [`DEFAULT_MAX_NESTING`].
    pub max_nesting: usize,
    /// See [`DEFAULT_MAX_FRAGMENTS`].
    pub max_fragments: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        Self {
            max_nesting: DEFAULT_MAX_NESTING,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
        }
    }
}

impl InputLimits {
    /// Checks `query` and `variables` without parsing the query.
    ///
    /// # Errors
    /// The first limit the input breaks.
    pub fn check(&self, query: &str, variables: &Variables) -> Result<(), InputLimitError> {
        scan(query, self.max_nesting, self.max_fragments)?;
        for value in variables.values() {
            if value_depth(value) > MAX_VARIABLE_NESTING {
                return Err(InputLimitError::Variables {
                    limit: MAX_VARIABLE_NESTING,
                });
            }
        }
        Ok(())
    }
}

/// Walks the query text once: string literals (`"…"` with escapes, block
/// strings `"""…"""`) and comments (`#` to the end of the line) are skipped,
/// brackets counted, top-level `fragment` keywords counted.
fn scan(query: &str, max_nesting: usize, max_fragments: usize) -> Result<(), InputLimitError> {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut fragments = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped triple quote inside a block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max_nesting {
                    return Err(InputLimitError::Nesting { limit: max_nesting });
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            b'f' if depth == 0 && is_keyword(bytes, i, b"fragment") => {
                fragments += 1;
                if fragments > max_fragments {
                    return Err(InputLimitError::Fragments {
                        limit: max_fragments,
                    });
                }
                i += b"fragment".len() - 1;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Whether `word` stands at `at` as a whole name (not part of a longer one).
fn is_keyword(bytes: &[u8], at: usize, word: &[u8]) -> bool {
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    bytes[at..].starts_with(word)
        && (at == 0 || !is_name(bytes[at - 1]))
        && bytes.get(at + word.len()).is_none_or(|&b| !is_name(b))
}

/// Nesting depth of a value, without recursion (the value came from JSON,
/// whose parser already stops at 128 levels, but stay safe regardless).
fn value_depth(value: &async_graphql::Value) -> usize {
    use async_graphql::Value;
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::List(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}

impl ExtensionFactory for InputLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_trait::async_trait]
impl Extension for InputLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        self.check(query, variables).map_err(to_server_error)?;
        next.run(ctx, query, variables).await
    }
}

/// The refusal as a GraphQL error with `extensions.code = BAD_USER_INPUT`.
pub fn to_server_error(e: InputLimitError) -> ServerError {
    let mut err = ServerError::new(e.to_string(), None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", "BAD_USER_INPUT");
    err.extensions = Some(ext);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(q: &str) -> Result<(), InputLimitError> {
        InputLimits::default().check(q, &Variables::default())
    }

    #[test]
    fn deep_literals_are_refused_before_parsing() {
        let list = format!(
            "{{ __typename(x: {}1{}) }}",
            "[".repeat(2000),
            "]".repeat(2000)
        );
        assert_eq!(
            check(&list),
            Err(InputLimitError::Nesting {
                limit: DEFAULT_MAX_NESTING
            })
        );
        let object = format!(
            "{{ __typename(x: {}1{}) }}",
            "{a:".repeat(1300),
            "}".repeat(1300)
        );
        assert!(check(&object).is_err());
    }

    #[test]
    fn ordinary_queries_pass() {
        assert_eq!(
            check("query Q($f: CustomerFilter = {emailPrefix: \"a{[(\"}) { customers(filter: $f) { nodes { id orders { id items { sku } } } } }"),
            Ok(())
        );
        let at_limit = format!(
            "{}{}",
            "[".repeat(DEFAULT_MAX_NESTING),
            "]".repeat(DEFAULT_MAX_NESTING)
        );
        assert_eq!(check(&at_limit), Ok(()));
        let over = format!(
            "{}{}",
            "[".repeat(DEFAULT_MAX_NESTING + 1),
            "]".repeat(DEFAULT_MAX_NESTING + 1)
        );
        assert!(check(&over).is_err());
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let q = format!(
            "{{ customer(id: \"{}\") {{ id }} # {}\n customers(filter: {{emailPrefix: \"\"\"{}\\\"\"\"\"\"\"}}) {{ nodes {{ id }} }} }}",
            "[".repeat(500),
            "{".repeat(500),
            "(".repeat(500)
        );
        assert_eq!(check(&q), Ok(()));
    }

    #[test]
    fn fragment_chains_are_bounded() {
        let mut q = String::from("{ ...F0 }\n");
        for i in 0..500 {
            q.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
        }
        assert_eq!(
            check(&q),
            Err(InputLimitError::Fragments {
                limit: DEFAULT_MAX_FRAGMENTS
            })
        );
        // A field named like the keyword is not a fragment.
        assert_eq!(check("{ fragments fragmentation }"), Ok(()));
    }

    #[test]
    fn deep_variables_are_refused() {
        let mut v = serde_json::json!(1);
        for _ in 0..40 {
            v = serde_json::json!([v]);
        }
        let vars = Variables::from_json(serde_json::json!({ "x": v }));
        assert!(matches!(
            InputLimits::default().check("query($x: Int) { __typename }", &vars),
            Err(InputLimitError::Variables { .. })
        ));
    }
}
