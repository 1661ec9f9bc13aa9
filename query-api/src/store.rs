//! The SQL of the query API: reads of the read-model views only (never the
//! event store), in the SQL PostgreSQL and SQLite share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// One `customer_view` row.
#[derive(Debug, Clone)]
pub struct CustomerRow {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub status: String,
    pub registered_at: String,
    pub order_count: i64,
    pub last_order_at: Option<String>,
    pub doc: Doc,
}

/// One `order_view` row.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub currency: String,
    pub total_minor: i64,
    pub item_count: i64,
    pub created_at: String,
    pub updated_at: String,
    pub doc: Doc,
}

/// A row's JSON document, parsed on first use: most queries select only
/// columns, and parsing twenty order documents nobody asked for was a
/// visible share of a `customer` query's time.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    raw: String,
    parsed: std::sync::OnceLock<serde_json::Value>,
}

impl Doc {
    /// A document from its stored text.
    pub fn new(raw: String) -> Self {
        Self {
            raw,
            parsed: std::sync::OnceLock::new(),
        }
    }

    /// The parsed document (`null` if the stored text is not JSON, which
    /// the projections never write).
    pub fn value(&self) -> &serde_json::Value {
        self.parsed.get_or_init(|| {
            serde_json::from_str(&self.raw).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "a read-model document is not JSON");
                serde_json::Value::Null
            })
        })
    }
}

impl std::ops::Index<&str> for Doc {
    type Output = serde_json::Value;
    fn index(&self, key: &str) -> &serde_json::Value {
        &self.value()[key]
    }
}

impl serde::Serialize for Doc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

fn doc(row: &AnyRow) -> Result<Doc, sqlx::Error> {
    Ok(Doc::new(row.try_get("doc")?))
}

fn customer(row: &AnyRow) -> Result<CustomerRow, sqlx::Error> {
    Ok(CustomerRow {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        registered_at: row.try_get("registered_at")?,
        order_count: row.try_get("order_count")?,
        last_order_at: row.try_get("last_order_at")?,
        doc: doc(row)?,
    })
}

fn order(row: &AnyRow) -> Result<OrderRow, sqlx::Error> {
    Ok(OrderRow {
        order_id: row.try_get("order_id")?,
        customer_id: row.try_get("customer_id")?,
        status: row.try_get("status")?,
        currency: row.try_get("currency")?,
        total_minor: row.try_get("total_minor")?,
        item_count: row.try_get("item_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        doc: doc(row)?,
    })
}

const CUSTOMER_COLUMNS: &str =
    "user_id, email, name, status, registered_at, order_count, last_order_at, doc";
const ORDER_COLUMNS: &str =
    "order_id, customer_id, status, currency, total_minor, item_count, created_at, updated_at, doc";

/// A keyset page position: the sort key and the id of the last row seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub key: String,
    pub id: String,
}

/// How to sort customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerOrder {
    RegisteredNewest,
    RegisteredOldest,
    Email,
}

/// Filters of `customers`.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    pub status: Option<String>,
    pub email_prefix: Option<String>,
    pub registered_after: Option<String>,
}

/// Read access to the views.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    statements: Arc<AtomicU64>,
}

impl Store {
    /// A store over the read-model pool.
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            statements: Arc::default(),
        }
    }

    /// SQL statements run so far (tests prove pages cost a fixed number).
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }

    /// The pool (consistency checks read the registry through it).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// One customer.
    ///
    /// # Errors
    /// Database errors.
    pub async fn customer(&self, id: &str) -> Result<Option<CustomerRow>, sqlx::Error> {
        self.count();
        let row = sqlx::query(&format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customer_view WHERE user_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(customer).transpose()
    }

    /// A page of customers (`limit` + 1 rows, to know whether more follow).
    ///
    /// # Errors
    /// Database errors.
    pub async fn customers(
        &self,
        filter: &CustomerFilter,
        order: CustomerOrder,
        after: Option<&After>,
        limit: i64,
    ) -> Result<Vec<CustomerRow>, sqlx::Error> {
        self.count();
        let (key, dir) = match order {
            CustomerOrder::RegisteredNewest => ("registered_at", "DESC"),
            CustomerOrder::RegisteredOldest => ("registered_at", "ASC"),
            CustomerOrder::Email => ("email", "ASC"),
        };
        let cmp = if dir == "DESC" { "<" } else { ">" };
        let mut clauses = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        fn next(v: String, binds: &mut Vec<String>) -> String {
            binds.push(v);
            format!("${}", binds.len())
        }
        if let Some(s) = &filter.status {
            clauses.push(format!("status = {}", next(s.clone(), &mut binds)));
        }
        if let Some(p) = &filter.email_prefix {
            // Prefix match without LIKE wildcards from the input: a range.
            let lo = next(p.to_lowercase(), &mut binds);
            let hi = next(format!("{}\u{10FFFF}", p.to_lowercase()), &mut binds);
            clauses.push(format!("email >= {lo} AND email < {hi}"));
        }
        if let Some(r) = &filter.registered_after {
            clauses.push(format!("registered_at > {}", next(r.clone(), &mut binds)));
        }
        if let Some(a) = after {
            let k1 = next(a.key.clone(), &mut binds);
            let k2 = next(a.key.clone(), &mut binds);
            let id = next(a.id.clone(), &mut binds);
            clauses.push(format!(
                "({key} {cmp} {k1} OR ({key} = {k2} AND user_id {cmp} {id}))"
            ));
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customer_view {filter_sql} ORDER BY {key} {dir}, user_id {dir} LIMIT {limit}");
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(customer)
            .collect()
    }

    /// One order.
    ///
    /// # Errors
    /// Database errors.
    pub async fn order(&self, id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
        self.count();
        let row = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM order_view WHERE order_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(order).transpose()
    }

    /// A page of orders, newest first, optionally of one customer and status
    /// (`limit` + 1 rows). One statement, items included, whatever the page size.
    ///
    /// # Errors
    /// Database errors.
    pub async fn orders(
        &self,
        customer_id: Option<&str>,
        status: Option<&str>,
        after: Option<&After>,
        limit: i64,
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        self.count();
        let mut clauses = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(c) = customer_id {
            binds.push(c.to_string());
            clauses.push(format!("customer_id = ${}", binds.len()));
        }
        if let Some(s) = status {
            binds.push(s.to_string());
            clauses.push(format!("status = ${}", binds.len()));
        }
        if let Some(a) = after {
            binds.push(a.key.clone());
            let k1 = binds.len();
            binds.push(a.key.clone());
            let k2 = binds.len();
            binds.push(a.id.clone());
            let id = binds.len();
            clauses.push(format!(
                "(created_at < ${k1} OR (created_at = ${k2} AND order_id < ${id}))"
            ));
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!("SELECT {ORDER_COLUMNS} FROM order_view {filter_sql} ORDER BY created_at DESC, order_id DESC LIMIT {limit}");
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        q.fetch_all(&self.pool).await?.iter().map(order).collect()
    }

    /// Orders per current status.
    ///
    /// # Errors
    /// Database errors.
    pub async fn orders_by_status(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        self.count();
        let rows = sqlx::query("SELECT status, CAST(count(*) AS BIGINT) AS n FROM order_view GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    /// Revenue per day in `[from, to]` for `currency`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn daily(
        &self,
        from: &str,
        to: &str,
        currency: &str,
    ) -> Result<Vec<(String, i64, i64, i64)>, sqlx::Error> {
        self.count();
        let rows = sqlx::query(
            "SELECT day, revenue_minor, orders_placed, placed_value_minor FROM analytics_daily \
             WHERE day >= $1 AND day <= $2 AND currency = $3 ORDER BY day",
        )
        .bind(from)
        .bind(to)
        .bind(currency)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("day")?,
                    r.try_get("revenue_minor")?,
                    r.try_get("orders_placed")?,
                    r.try_get("placed_value_minor")?,
                ))
            })
            .collect()
    }

    /// Top products in `[from, to]`: (sku, name, currency, quantity, revenue).
    ///
    /// # Errors
    /// Database errors.
    pub async fn top_products(
        &self,
        from: &str,
        to: &str,
        by_revenue: bool,
        limit: i64,
    ) -> Result<Vec<(String, String, String, i64, i64)>, sqlx::Error> {
        self.count();
        let order = if by_revenue {
            "revenue DESC, quantity DESC"
        } else {
            "quantity DESC, revenue DESC"
        };
        let rows = sqlx::query(&format!(
            "SELECT sku, MAX(name) AS name, currency, CAST(SUM(quantity) AS BIGINT) AS quantity, \
                    CAST(SUM(revenue_minor) AS BIGINT) AS revenue \
             FROM analytics_products WHERE day >= $1 AND day <= $2 \
             GROUP BY sku, currency ORDER BY {order}, sku LIMIT {limit}"
        ))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("sku")?,
                    r.try_get("name")?,
                    r.try_get("currency")?,
                    r.try_get("quantity")?,
                    r.try_get("revenue")?,
                ))
            })
            .collect()
    }

    /// Payment outcomes in `[from, to]`: (outcome, reason, count).
    ///
    /// # Errors
    /// Database errors.
    pub async fn payment_outcomes(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
        self.count();
        let rows = sqlx::query(
            "SELECT outcome, reason, CAST(SUM(count) AS BIGINT) AS n FROM analytics_payments \
             WHERE day >= $1 AND day <= $2 GROUP BY outcome, reason ORDER BY outcome, reason",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("outcome")?, r.try_get("reason")?, r.try_get("n")?)))
            .collect()
    }

    /// New customers in `[from, to]`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn new_customers(&self, from: &str, to: &str) -> Result<i64, sqlx::Error> {
        self.count();
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(new_customers), 0) AS BIGINT) FROM analytics_customers WHERE day >= $1 AND day <= $2")
            .bind(from)
            .bind(to)
            .fetch_one(&self.pool)
            .await
    }

    /// Funnel counts per stage in `[from, to]`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn funnel(&self, from: &str, to: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
        self.count();
        let rows = sqlx::query(
            "SELECT stage, CAST(SUM(count) AS BIGINT) AS n FROM analytics_funnel WHERE day >= $1 AND day <= $2 GROUP BY stage",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("stage")?, r.try_get("n")?)))
            .collect()
    }
}
