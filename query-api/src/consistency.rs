//! Read your writes: a query sent with `X-Consistency-Token: <position>`
//! waits (bounded) until every projection it touches has applied that
//! position. Waiting wakes on projection commits, never polls per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::parser::types::{
    DocumentOperations, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::Positioned;
use eventlog::Cursor;
use readmodel::Wake;
use sqlx::{AnyPool, Row};

/// Where the projections a query reads stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reflected {
    /// The lowest position applied by the projections the query reads.
    pub position: i64,
    /// A token was sent and not reached in time.
    pub stale: bool,
}

/// Waits for tokens.
#[derive(Clone)]
pub struct Consistency {
    pool: AnyPool,
    postgres: bool,
    commits: Wake,
    timeout: Duration,
    /// The live checkpoints as last read, for queries without a token.
    seen: Arc<Mutex<Option<Seen>>>,
    /// Which projections a query text touches (frontends send the same
    /// texts again and again).
    touches: Arc<Mutex<HashMap<String, Vec<&'static str>>>>,
}

/// Live checkpoints read after the `version`-th projection commit signal.
struct Seen {
    version: u64,
    at: Instant,
    checkpoints: Vec<(String, Cursor)>,
}

/// A query without a token reports checkpoints read at most this long ago
/// (and none older than the last commit signal): an answer's reported
/// position may lag what it shows by that much, never lead it.
const SEEN_FOR: Duration = Duration::from_millis(50);

/// Query texts whose touched projections are remembered.
const TOUCHES_KEPT: usize = 512;

/// The projections a query's fields read (all of them when unsure). A
/// customer is read from `customer_view`; only its `orders` (anywhere
/// under it) reads `order_view` too, so a query for a profile does not
/// wait for the order projection.
pub fn touched(query: &str) -> Vec<&'static str> {
    let all = vec!["customer_view", "order_view", "analytics"];
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return all;
    };
    let operations: Vec<_> = match &doc.operations {
        DocumentOperations::Single(op) => vec![op],
        DocumentOperations::Multiple(ops) => ops.values().collect(),
    };
    let mut out = Vec::new();
    for op in operations {
        for selection in &op.node.selection_set.node.items {
            let Selection::Field(field) = &selection.node else {
                return all;
            };
            let customer = || {
                let set = &field.node.selection_set.node;
                if selects(set, &doc.fragments, "orders", 0) {
                    &["customer_view", "order_view"][..]
                } else {
                    &["customer_view"][..]
                }
            };
            let names: &[&'static str] = match field.node.name.node.as_str() {
                "me" | "customer" | "customers" => customer(),
                "order" | "orders" => &["order_view"],
                "analytics" => &["analytics", "order_view"],
                "projections" | "__schema" | "__type" | "__typename" => &[],
                _ => return all,
            };
            for n in names {
                if !out.contains(n) {
                    out.push(*n);
                }
            }
        }
    }
    out
}

/// Fragments nested deeper than this count as selecting anything (a
/// cycle, which validation refuses later).
const FRAGMENT_DEPTH: usize = 16;

/// Whether `set` selects a field named `name` at any depth, through inline
/// fragments and the document's named ones (an unknown fragment counts as
/// selecting it).
fn selects(set: &SelectionSet, fragments: &Fragments, name: &str, depth: usize) -> bool {
    if depth > FRAGMENT_DEPTH {
        return true;
    }
    set.items.iter().any(|item| match &item.node {
        Selection::Field(f) => {
            f.node.name.node.as_str() == name
                || selects(&f.node.selection_set.node, fragments, name, depth)
        }
        Selection::InlineFragment(inline) => {
            selects(&inline.node.selection_set.node, fragments, name, depth + 1)
        }
        Selection::FragmentSpread(spread) => fragments
            .get(&spread.node.fragment_name.node)
            .is_none_or(|f| selects(&f.node.selection_set.node, fragments, name, depth + 1)),
    })
}

/// A document's named fragments.
type Fragments = HashMap<async_graphql::Name, Positioned<FragmentDefinition>>;

impl Consistency {
    /// Waits on `commits`, at most `timeout` per query.
    pub fn new(pool: AnyPool, postgres: bool, commits: Wake, timeout: Duration) -> Self {
        Self {
            pool,
            postgres,
            commits,
            timeout,
            seen: Arc::default(),
            touches: Arc::default(),
        }
    }

    /// [`touched`], remembered per query text.
    pub fn touched(&self, query: &str) -> Vec<&'static str> {
        let known = self
            .touches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(query)
            .cloned();
        if let Some(names) = known {
            return names;
        }
        let names = touched(query);
        let mut m = self
            .touches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= TOUCHES_KEPT {
            m.clear();
        }
        m.insert(query.to_string(), names.clone());
        names
    }

    /// The live checkpoints of `names`; with `fresh` false, possibly as
    /// read a moment ago (see [`SEEN_FOR`]).
    async fn checkpoints(&self, names: &[&str], fresh: bool) -> Result<Vec<Cursor>, sqlx::Error> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let version = *self.commits.subscribe().borrow();
        let pick = |all: &[(String, Cursor)]| -> Vec<Cursor> {
            all.iter()
                .filter(|(n, _)| names.contains(&n.as_str()))
                .map(|(_, c)| *c)
                .collect()
        };
        if !fresh {
            let seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(s) = seen
                .as_ref()
                .filter(|s| s.version == version && s.at.elapsed() < SEEN_FOR)
            {
                return Ok(pick(&s.checkpoints));
            }
        }
        let at = Instant::now();
        let rows = sqlx::query(
            "SELECT s.name, s.cursor_txid, s.cursor_position FROM projection_state s \
             JOIN projection_live l ON s.name = l.name AND s.generation = l.generation",
        )
        .fetch_all(&self.pool)
        .await?;
        let all = rows
            .iter()
            .map(|r| {
                let txid: String = r.try_get(1)?;
                Ok((
                    r.try_get::<String, _>(0)?,
                    Cursor {
                        transaction_id: txid.parse().unwrap_or(0),
                        position: r.try_get(2)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let picked = pick(&all);
        *self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Seen {
            version,
            at,
            checkpoints: all,
        });
        Ok(picked)
    }

    /// The token's place in the log, when the event exists.
    async fn target(&self, position: i64) -> Result<Option<Cursor>, sqlx::Error> {
        if !self.postgres {
            return Ok(Some(Cursor {
                transaction_id: 0,
                position,
            }));
        }
        let xid: Option<String> =
            sqlx::query_scalar("SELECT transaction_id::text FROM events WHERE position = $1")
                .bind(position)
                .fetch_optional(&self.pool)
                .await?;
        Ok(xid
            .and_then(|x| x.parse().ok())
            .map(|transaction_id| Cursor {
                transaction_id,
                position,
            }))
    }

    /// Waits until `names` have applied `token` (or the timeout passes) and
    /// says what the answer will reflect.
    ///
    /// # Errors
    /// Database errors.
    pub async fn wait(&self, token: Option<i64>, names: &[&str]) -> Result<Reflected, sqlx::Error> {
        let mut woken = self.commits.subscribe();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let target = match token {
            Some(p) => Some((p, self.target(p).await?)),
            None => None,
        };
        loop {
            let checkpoints = self.checkpoints(names, target.is_some()).await?;
            let position = checkpoints.iter().map(|c| c.position).min().unwrap_or(0);
            let reached = match target {
                None => true,
                // The event exists: compare places in the log.
                Some((_, Some(t))) => {
                    checkpoints.len() == names.len() && checkpoints.iter().all(|c| *c >= t)
                }
                // Unknown position: compare positions only.
                Some((p, None)) => {
                    checkpoints.len() == names.len() && checkpoints.iter().all(|c| c.position >= p)
                }
            };
            if reached {
                if target.is_some() {
                    waited(started, "reached");
                }
                return Ok(Reflected {
                    position,
                    stale: false,
                });
            }
            tokio::select! {
                _ = woken.changed() => {}
                () = tokio::time::sleep_until(deadline) => {
                    waited(started, "stale");
                    return Ok(Reflected { position, stale: true });
                }
            }
        }
    }
}

/// Records how long a query with a token waited for it.
fn waited(started: Instant, outcome: &str) {
    telemetry::metrics::observe_seconds(
        "graphql_consistency_wait_seconds",
        "How long queries with a consistency token waited for the projections.",
        &[("outcome", outcome)],
        started.elapsed().as_secs_f64(),
    );
}

#[cfg(test)]
mod tests {
    use super::touched;

    #[test]
    fn touched_projections_follow_top_level_fields() {
        assert_eq!(touched("{ order(id: \"x\") { id } }"), ["order_view"]);
        // A customer without its orders reads only the customer view.
        assert_eq!(
            touched("{ customer(id: \"u\") { id email } }"),
            ["customer_view"]
        );
        assert_eq!(
            touched("{ me { name orders(first: 5) { edges { node { id } } } } }"),
            ["customer_view", "order_view"]
        );
        assert_eq!(
            touched(
                "{ customers { edges { node { ... on Customer { orders { totalCount } } } } } }"
            ),
            ["customer_view", "order_view"]
        );
        assert_eq!(
            touched("query { me { ...F } } fragment F on Customer { orders { edges { cursor } } }"),
            ["customer_view", "order_view"]
        );
        assert_eq!(
            touched("query { me { ...F } } fragment F on Customer { email }"),
            ["customer_view"]
        );
        // A fragment the document does not define: unsure.
        assert_eq!(
            touched("{ me { ...Missing } }"),
            ["customer_view", "order_view"]
        );
        // Fragments spreading each other (refused later) end.
        assert_eq!(
            touched("query { me { ...A } } fragment A on Customer { ...B } fragment B on Customer { ...A }"),
            ["customer_view", "order_view"]
        );
        assert_eq!(
            touched("query { me { id } analytics { ordersByStatus { status } } }"),
            ["customer_view", "analytics", "order_view"]
        );
        assert_eq!(touched("{ projections { name } }"), Vec::<&str>::new());
        assert_eq!(
            touched("{ ... on Query { me { id } } }").len(),
            3,
            "unsure → all"
        );
        assert_eq!(touched("not graphql").len(), 3);
    }
}
