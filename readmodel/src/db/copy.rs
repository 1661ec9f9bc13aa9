//! PostgreSQL's binary `COPY`: how a bulk rebuild writes a working set's
//! rows into a generation's tables. Into a table that holds nothing yet,
//! straight in; into one that may (after a spill), through a temporary
//! stage merged with the table's own upsert rule. Rows the table cannot hold
//! yet (keys this fill never wrote) go straight in even then.

use sqlx::postgres::{PgConnection, Postgres};
use sqlx::{Row, Transaction};

use super::bulk::{BulkTable, Part, RowSink};
use super::SqlValue;
use crate::ProjectionError;

/// A transaction on a dedicated PostgreSQL connection.
pub type PgTx<'c> = Transaction<'c, Postgres>;

/// The binary format's signature, flags and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Bytes encoded before they are sent.
const SEND_AT: usize = 1 << 20;

/// How a column's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int4,
    Int8,
}

/// Rows encoded in the binary `COPY` format.
#[derive(Debug)]
struct Encoder {
    table: String,
    kinds: Vec<Kind>,
    buf: Vec<u8>,
}

impl Encoder {
    /// A row this table cannot take.
    fn corrupt(&self, what: String) -> ProjectionError {
        ProjectionError::Corrupt(format!("{}: {what}", self.table))
    }

    fn field(&mut self, bytes: &[u8]) -> Result<(), ProjectionError> {
        let len = i32::try_from(bytes.len())
            .map_err(|_| ProjectionError::Corrupt(format!("{}: a value over 2 GiB", self.table)))?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
}

impl RowSink for Encoder {
    fn row(&mut self, values: Vec<SqlValue>) -> Result<(), ProjectionError> {
        let width = i16::try_from(values.len())
            .ok()
            .filter(|_| values.len() == self.kinds.len())
            .ok_or_else(|| {
                self.corrupt(format!(
                    "{} values for {} columns",
                    values.len(),
                    self.kinds.len()
                ))
            })?;
        self.buf.extend_from_slice(&width.to_be_bytes());
        for (i, value) in values.into_iter().enumerate() {
            match (value, self.kinds[i]) {
                (SqlValue::Null, _) => self.buf.extend_from_slice(&(-1i32).to_be_bytes()),
                (SqlValue::Text(s), Kind::Text) => self.field(s.as_bytes())?,
                (SqlValue::Int(n), Kind::Int8) => self.field(&n.to_be_bytes())?,
                (SqlValue::Int(n), Kind::Int4) => {
                    let small = i32::try_from(n)
                        .map_err(|_| self.corrupt(format!("{n} does not fit an integer column")))?;
                    self.field(&small.to_be_bytes())?;
                }
                (value, kind) => {
                    return Err(self.corrupt(format!("{value:?} for a {kind:?} column")))
                }
            }
        }
        Ok(())
    }

    fn full(&self) -> bool {
        self.buf.len() >= SEND_AT
    }
}

/// The encodings of `columns` of `table`, from the catalog.
async fn kinds(
    tx: &mut PgTx<'_>,
    table: &str,
    columns: &[&str],
) -> Result<Vec<Kind>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await?;
    let mut types = std::collections::HashMap::new();
    for row in rows {
        types.insert(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?);
    }
    columns
        .iter()
        .map(|c| match types.get(*c).map(String::as_str) {
            Some("text") => Ok(Kind::Text),
            Some("integer") => Ok(Kind::Int4),
            Some("bigint") => Ok(Kind::Int8),
            other => Err(ProjectionError::Corrupt(format!(
                "{table}.{c}: cannot copy a column of type {other:?}"
            ))),
        })
        .collect()
}

/// Writes every changed row of `table` into generation `g` inside `tx`
/// with binary `COPY` (`retain`: see [`BulkTable::split`]): rows the table cannot hold yet straight in, the
/// others through a temporary stage merged with the table's upsert rule.
///
/// # Errors
/// Database errors; a row that cannot be encoded.
pub async fn copy_table(
    tx: &mut PgTx<'_>,
    g: i64,
    table: &mut dyn BulkTable,
    retain: usize,
) -> Result<(), ProjectionError> {
    let shape = table.shape();
    let target = format!("{}_g{g}", shape.table);
    let columns = shape.columns.join(", ");
    let kinds = kinds(tx, &target, &shape.columns).await?;
    table.split(retain);
    let mut encoder = Encoder {
        table: target.clone(),
        kinds,
        buf: Vec::new(),
    };
    if table.has(Part::New) {
        copy_part(tx, &target, &columns, &mut encoder, table, Part::New).await?;
    }
    if table.has(Part::Stored) {
        let stage = format!("bulk_stage_{}", shape.table);
        sqlx::query(&format!(
            "CREATE TEMPORARY TABLE {stage} (LIKE {target}) ON COMMIT DROP"
        ))
        .execute(&mut **tx)
        .await?;
        copy_part(tx, &stage, &columns, &mut encoder, table, Part::Stored).await?;
        sqlx::query(&format!(
            "INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage} {}",
            shape.on_conflict(g)
        ))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// One `COPY` of `part`'s rows of `table` into `into`.
async fn copy_part(
    tx: &mut PgTx<'_>,
    into: &str,
    columns: &str,
    encoder: &mut Encoder,
    table: &mut dyn BulkTable,
    part: Part,
) -> Result<(), ProjectionError> {
    encoder.buf = HEADER.to_vec();
    let mut copy = (&mut **tx as &mut PgConnection)
        .copy_in_raw(&format!(
            "COPY {into} ({columns}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    loop {
        let more = match table.drain(part, encoder) {
            Ok(more) => more,
            Err(e) => {
                copy.abort(e.to_string()).await?;
                return Err(e);
            }
        };
        if !more {
            encoder.buf.extend_from_slice(&(-1i16).to_be_bytes());
        }
        copy.send(std::mem::take(&mut encoder.buf)).await?;
        if !more {
            break;
        }
    }
    copy.finish().await?;
    Ok(())
}
