//! Document rows: a read model's row as a JSON document plus the indexed
//! columns queries filter and sort on.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, FromRow, Row};

use super::bulk::{Merge, Shape};
use super::{bind_all, placeholders, sized_query, SqlValue, Tx, CHUNK};
use crate::ProjectionError;

/// A read model row stored as a JSON document plus indexed columns,
/// declared with [`doc_row!`].
pub trait DocRow: Serialize + DeserializeOwned {
    /// The table (its generations are `<TABLE>_g<n>`, the live one a view).
    const TABLE: &'static str;
    /// The key column.
    const KEY: &'static str;
    /// Indexed columns besides the key and `doc`, in table order.
    const COLUMNS: &'static [&'static str] = &[];
    /// Their values for this row.
    fn column_values(&self) -> Vec<SqlValue> {
        Vec::new()
    }
}

/// Implements [`DocRow`]: the document's table, its key column and its
/// indexed columns (fields of the same names, in table order):
/// `doc_row! { OrderView in order_view, key order_id, columns status, currency }`.
///
/// With `read as Row: column: Type, …` instead of `columns …`, it also
/// declares the row the query side reads: the key, the columns (typed once,
/// here) and the document, parsed on first use ([`crate::Doc`]), with `get`.
macro_rules! doc_row {
    ($doc:ident in $table:ident, key $key:ident $(, columns $($field:ident),+)? $(,)?) => {
        impl $crate::db::DocRow for $doc {
            const TABLE: &'static str = stringify!($table);
            const KEY: &'static str = stringify!($key);
            $(
                const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),+];
                fn column_values(&self) -> Vec<$crate::db::SqlValue> {
                    vec![$($crate::db::SqlValue::from(&self.$field)),+]
                }
            )?
        }
    };
    ($doc:ident in $table:ident, key $key:ident, read as $row:ident: $($field:ident: $ty:ty),+ $(,)?) => {
        $crate::db::doc_row! { $doc in $table, key $key, columns $($field),+ }

        #[doc = concat!("A row of `", stringify!($table), "` as the query side reads it: `",
                        stringify!($key), "`, the indexed columns and the document, parsed on first use.")]
        #[derive(Debug, Clone, sqlx::FromRow)]
        pub struct $row {
            pub $key: String,
            $(pub $field: $ty,)+
            #[sqlx(try_from = "String")]
            pub doc: $crate::Doc<$doc>,
        }

        impl $row {
            /// The columns a query selects, in the row's order.
            pub fn columns() -> &'static str {
                static COLUMNS: std::sync::LazyLock<String> =
                    std::sync::LazyLock::new(|| $crate::db::columns::<$doc>());
                &COLUMNS
            }

            /// The row of `key` in the live generation.
            ///
            /// # Errors
            /// Database errors.
            pub async fn get(pool: &sqlx::AnyPool, key: &str) -> Result<Option<Self>, sqlx::Error> {
                let sql = format!(
                    "SELECT {} FROM {} WHERE {} = $1",
                    Self::columns(), stringify!($table), stringify!($key)
                );
                $crate::db::fetch_by_key(pool, &sql, key).await
            }
        }
    };
}
pub(crate) use doc_row;

/// The columns a query reads of a document table: the key, the indexed
/// columns of `T` and the document, in that order (one list, owned by the
/// row type that writes them).
pub fn columns<T: DocRow>() -> String {
    let mut all = vec![T::KEY];
    all.extend_from_slice(T::COLUMNS);
    all.push("doc");
    all.join(", ")
}

/// Text parameters of a query built clause by clause, numbered in order.
#[derive(Debug, Default)]
pub struct Binds(Vec<String>);

impl Binds {
    /// Adds a parameter and returns its placeholder (`$n`).
    pub fn push(&mut self, value: &str) -> String {
        self.0.push(value.to_string());
        format!("${}", self.0.len())
    }

    /// `WHERE a AND b …`, or nothing without clauses.
    pub fn filter(clauses: &[String]) -> String {
        if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        }
    }

    /// The rows of `sql` with the parameters bound, each read by `row`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn fetch<R: for<'r> FromRow<'r, AnyRow>>(
        self,
        pool: &sqlx::AnyPool,
        sql: &str,
    ) -> Result<Vec<R>, sqlx::Error> {
        let rows = self.query(sql).fetch_all(pool).await?;
        rows.iter().map(|r| R::from_row(r)).collect()
    }

    /// `sql` with the parameters bound.
    pub fn query(self, sql: &str) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
        bind_all(
            sqlx::query(sql),
            self.0.into_iter().map(SqlValue::Text).collect(),
        )
    }
}

/// Loads the documents of `keys` from `table` (generation `g`).
///
/// # Errors
/// Database errors, or an unreadable document.
pub async fn load_docs<T: DocRow, S: std::hash::BuildHasher + Default>(
    tx: &mut Tx<'_>,
    table: &str,
    key_column: &str,
    g: i64,
    keys: &[String],
) -> Result<HashMap<String, T, S>, ProjectionError> {
    let mut out = HashMap::default();
    for chunk in keys.chunks(CHUNK) {
        let sql = format!(
            "SELECT {key_column}, doc FROM {table}_g{g} WHERE {key_column} IN ({})",
            placeholders(1, chunk.len())
        );
        let q = bind_all(
            sized_query(&sql, chunk.len()),
            chunk.iter().cloned().map(SqlValue::Text).collect(),
        );
        for row in q.fetch_all(&mut **tx).await? {
            let key: String = row.try_get(0)?;
            let doc: String = row.try_get(1)?;
            let value = serde_json::from_str(&doc)
                .map_err(|e| ProjectionError::Corrupt(format!("{table} {key}: {e}")))?;
            out.insert(key, value);
        }
    }
    Ok(out)
}

/// The shape of `T`'s rows: the key, the document, the indexed columns.
pub fn doc_shape<T: DocRow>() -> Shape {
    let mut columns = vec![T::KEY, "doc"];
    columns.extend_from_slice(T::COLUMNS);
    Shape {
        table: T::TABLE,
        columns,
        keys: vec![T::KEY],
        merge: Merge::Replace,
    }
}

/// `row` of `key` as values in [`doc_shape`]'s column order.
///
/// # Errors
/// A document that cannot be serialized.
pub fn doc_values<T: DocRow>(key: String, row: &T) -> Result<Vec<SqlValue>, ProjectionError> {
    let mut values = vec![SqlValue::Text(key)];
    values.extend(doc_parts(row)?);
    Ok(values)
}

/// [`doc_values`] without the key: the document, then the columns.
///
/// # Errors
/// A document that cannot be serialized.
pub fn doc_parts<T: DocRow>(row: &T) -> Result<Vec<SqlValue>, ProjectionError> {
    let mut values = vec![SqlValue::Text(
        serde_json::to_string(row).map_err(|e| ProjectionError::Corrupt(e.to_string()))?,
    )];
    values.extend(row.column_values());
    Ok(values)
}

/// Upserts `rows` of `T`'s table (generation `g`): one statement per chunk.
///
/// # Errors
/// Database errors.
pub async fn save_docs<'a, T: DocRow + 'a>(
    tx: &mut Tx<'_>,
    g: i64,
    rows: impl IntoIterator<Item = (&'a String, &'a T)>,
) -> Result<(), ProjectionError> {
    let values = rows
        .into_iter()
        .map(|(key, row)| doc_values(key.clone(), row))
        .collect::<Result<Vec<_>, _>>()?;
    doc_shape::<T>().upsert(tx, g, values).await
}

/// The row of `sql` for key `id` (one parameter), read by `row`.
///
/// # Errors
/// Database errors.
pub async fn fetch_by_key<R: for<'r> FromRow<'r, AnyRow>>(
    pool: &sqlx::AnyPool,
    sql: &str,
    id: &str,
) -> Result<Option<R>, sqlx::Error> {
    let found = sqlx::query(sql).bind(id).fetch_optional(pool).await?;
    found.as_ref().map(|r| R::from_row(r)).transpose()
}
