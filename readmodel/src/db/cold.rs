//! Cold rows of a working set a bulk rebuild keeps across batches: changed
//! rows that no batch touched for [`AGE`] batches, held as the values they
//! will be written with (document and indexed columns), compressed, until
//! the next write-out. A parsed row takes about three times its document;
//! a cold one about a third of it (JSON documents repeat their field
//! names), so the same memory bound holds several times the rows before a
//! spill. A batch that touches a cold row again thaws it first (a
//! decompression and a parse, no round trip).

use std::collections::VecDeque;

use super::{DocRow, SqlValue};
use crate::ProjectionError;

/// Batches a changed row stays parsed without being touched before it is
/// frozen.
pub(crate) const AGE: u32 = 4;

/// What a cold row's entry takes besides its bytes (the map's entry, the
/// key's allocation).
const ENTRY_BYTES: usize = 64;

pub(crate) type Map<V> = std::collections::HashMap<String, V, foldhash::fast::RandomState>;

/// The cold rows of one table, and which keys changed in which batch.
#[derive(Debug, Default)]
pub(crate) struct Cold {
    rows: Map<Box<[u8]>>,
    bytes: usize,
    /// Keys whose row changed in a batch, per batch, the oldest first.
    changed: VecDeque<(u32, Vec<String>)>,
    /// Reused buffers: a row's values, and the same compressed.
    plain: Vec<u8>,
    packed: Vec<u8>,
}

impl Cold {
    /// `key`'s row changed in batch `epoch` (first time in that batch).
    pub(crate) fn note(&mut self, epoch: u32, key: &str) {
        match self.changed.back_mut() {
            Some((at, keys)) if *at == epoch => keys.push(key.to_string()),
            _ => self.changed.push_back((epoch, vec![key.to_string()])),
        }
    }

    /// The keys that changed in batches at least [`AGE`] before `now`,
    /// each with its batch (still to check: a later change moves a row's
    /// batch on).
    pub(crate) fn aged(&mut self, now: u32) -> Vec<(u32, Vec<String>)> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.changed.front() {
            if now.wrapping_sub(*at) < AGE {
                break;
            }
            out.extend(self.changed.pop_front());
        }
        out
    }

    /// Forgets which keys changed when (a new stretch of freezing notes
    /// them afresh).
    pub(crate) fn forget_changes(&mut self) {
        self.changed.clear();
    }

    /// Keeps `key`'s row as the values it is written with (its document
    /// and columns, without the key).
    ///
    /// # Errors
    /// A document that cannot be serialized (the row is then not frozen).
    pub(crate) fn freeze_row<T: DocRow>(
        &mut self,
        key: String,
        row: &T,
    ) -> Result<(), ProjectionError> {
        self.plain.clear();
        self.plain.push(TEXT);
        self.plain.extend_from_slice(&[0; 4]);
        serde_json::to_writer(&mut self.plain, row)
            .map_err(|e| ProjectionError::Corrupt(e.to_string()))?;
        let len = u32::try_from(self.plain.len() - 5).unwrap_or(u32::MAX);
        self.plain[1..5].copy_from_slice(&len.to_le_bytes());
        encode_into(&row.column_values(), &mut self.plain);
        self.store(key);
        Ok(())
    }

    /// Keeps `key`'s row as `values` (its document and columns, without
    /// the key).
    #[cfg(test)]
    fn freeze(&mut self, key: String, values: &[SqlValue]) {
        self.plain.clear();
        encode_into(values, &mut self.plain);
        self.store(key);
    }

    /// Compresses the values in `plain` as `key`'s cold row.
    fn store(&mut self, key: String) {
        let bound = 4 + lz4_flex::block::get_maximum_output_size(self.plain.len());
        self.packed.resize(bound, 0);
        let len = u32::try_from(self.plain.len()).unwrap_or(u32::MAX);
        self.packed[..4].copy_from_slice(&len.to_le_bytes());
        let Ok(n) = lz4_flex::block::compress_into(&self.plain, &mut self.packed[4..]) else {
            return; // cannot happen: the buffer has the bound's room
        };
        let packed: Box<[u8]> = Box::from(&self.packed[..4 + n]);
        self.bytes += packed.len() + key.len() + ENTRY_BYTES;
        if let Some(old) = self.rows.insert(key, packed) {
            self.bytes -= old.len();
        }
    }

    /// Takes `key`'s cold row out: its values without the key.
    ///
    /// # Errors
    /// Bytes that do not decode (a bug: they were encoded here).
    pub(crate) fn take(&mut self, key: &str) -> Result<Option<Vec<SqlValue>>, ProjectionError> {
        let Some(packed) = self.rows.remove(key) else {
            return Ok(None);
        };
        self.bytes -= (packed.len() + key.len() + ENTRY_BYTES).min(self.bytes);
        let raw = lz4_flex::decompress_size_prepended(&packed)
            .map_err(|e| ProjectionError::Corrupt(format!("a cold row of {key}: {e}")))?;
        decode(&raw).map(Some)
    }

    /// Takes `key`'s cold row out, parsed again.
    ///
    /// # Errors
    /// Bytes that do not decode, or a document that does not parse.
    pub(crate) fn thaw<T: DocRow>(&mut self, key: &str) -> Result<Option<T>, ProjectionError> {
        let Some(packed) = self.rows.remove(key) else {
            return Ok(None);
        };
        self.bytes -= (packed.len() + key.len() + ENTRY_BYTES).min(self.bytes);
        let raw = lz4_flex::decompress_size_prepended(&packed)
            .map_err(|e| ProjectionError::Corrupt(format!("a cold row of {key}: {e}")))?;
        let doc = match raw.split_first() {
            Some((&TEXT, rest)) => rest
                .split_first_chunk::<4>()
                .and_then(|(len, rest)| rest.get(..u32::from_le_bytes(*len) as usize)),
            _ => None,
        };
        let doc = doc.ok_or_else(|| {
            ProjectionError::Corrupt(format!(
                "{} {key}: a cold row without its document",
                T::TABLE
            ))
        })?;
        serde_json::from_slice(doc)
            .map(Some)
            .map_err(|e| ProjectionError::Corrupt(format!("{} {key}: {e}", T::TABLE)))
    }

    /// Forgets `key`'s cold row (a new row replaces it).
    pub(crate) fn discard(&mut self, key: &str) {
        if let Some(packed) = self.rows.remove(key) {
            self.bytes -= (packed.len() + key.len() + ENTRY_BYTES).min(self.bytes);
        }
    }

    /// Freezes the changed rows of `rows` (changed in the batch `dirty`
    /// says) that no batch touched for [`AGE`] batches before `now`, while
    /// `freeze` (a row that cannot be serialized stays parsed; its
    /// write-out reports it). Changes are noted by batch only while
    /// freezing (`freezing`): the first call of a stretch looks through
    /// every changed row once.
    pub(crate) fn freeze_aged<T: DocRow>(
        &mut self,
        (rows, dirty): (&mut Map<T>, &mut Map<u32>),
        now: u32,
        (freezing, freeze): (&mut bool, bool),
    ) {
        let mut aged = self.aged(now);
        if !freeze {
            *freezing = false;
            return;
        }
        if !*freezing {
            *freezing = true;
            self.forget_changes();
            let mut changed: Vec<(u32, &String)> = dirty.iter().map(|(k, at)| (*at, k)).collect();
            changed.sort_unstable_by_key(|(at, _)| now.wrapping_sub(*at));
            for (at, key) in changed.into_iter().rev() {
                if now.wrapping_sub(at) >= AGE {
                    aged.push((at, vec![key.clone()]));
                } else {
                    self.note(at, key);
                }
            }
        }
        for (epoch, keys) in aged {
            for key in keys {
                if dirty.get(&key) != Some(&epoch) {
                    continue; // changed since, or written out
                }
                let Some(row) = rows.remove(&key) else {
                    continue;
                };
                if self.freeze_row(key.clone(), &row).is_err() {
                    rows.insert(key, row);
                    continue;
                }
                dirty.remove(&key);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.rows.contains_key(key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The cold rows' keys.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.rows.keys()
    }

    /// Roughly what the cold rows take.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

const NULL: u8 = 0;
const TEXT: u8 = 1;
const INT: u8 = 2;

/// `values` as bytes: per value a tag, then a text's length and bytes or
/// an integer's eight bytes.
#[cfg(test)]
fn encode(values: &[SqlValue]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(values, &mut out);
    out
}

/// [`encode`], appended to `out`.
fn encode_into(values: &[SqlValue], out: &mut Vec<u8>) {
    for value in values {
        match value {
            SqlValue::Null => out.push(NULL),
            SqlValue::Text(s) => {
                out.push(TEXT);
                // Documents are far under 4 GiB (COPY refuses 2 GiB).
                out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            SqlValue::Int(n) => {
                out.push(INT);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
    }
}

/// [`encode`] undone.
fn decode(mut bytes: &[u8]) -> Result<Vec<SqlValue>, ProjectionError> {
    let bad = || ProjectionError::Corrupt("a cold row that does not decode".into());
    let mut out = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        out.push(match tag {
            NULL => SqlValue::Null,
            TEXT => {
                let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(bad)?;
                let len = u32::from_le_bytes(*len) as usize;
                let text = rest.get(..len).ok_or_else(bad)?;
                bytes = &rest[len..];
                SqlValue::Text(String::from_utf8(text.to_vec()).map_err(|_| bad())?)
            }
            INT => {
                let (n, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
                bytes = rest;
                SqlValue::Int(i64::from_le_bytes(*n))
            }
            _ => return Err(bad()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<SqlValue> {
        vec![
            SqlValue::Text(r#"{"status":"paid","items":[{"sku":"A"},{"sku":"B"}]}"#.into()),
            SqlValue::Int(-42),
            SqlValue::Null,
            SqlValue::Text(String::new()),
            SqlValue::Text("ünïcode".into()),
        ]
    }

    #[test]
    fn a_frozen_row_comes_back_as_it_went_in() {
        let mut cold = Cold::default();
        cold.freeze("k".into(), &values());
        assert!(cold.contains("k") && cold.bytes() > 0);
        assert_eq!(cold.take("k").unwrap(), Some(values()));
        assert!(cold.is_empty());
        assert_eq!(cold.bytes(), 0);
        assert_eq!(cold.take("k").unwrap(), None);
    }

    #[test]
    fn refreezing_a_key_replaces_it() {
        let mut cold = Cold::default();
        cold.freeze("k".into(), &values());
        let once = cold.bytes();
        cold.freeze("k".into(), &[SqlValue::Int(1)]);
        assert!(cold.bytes() < once);
        assert_eq!(cold.take("k").unwrap(), Some(vec![SqlValue::Int(1)]));
    }

    #[test]
    fn repetitive_documents_take_less_than_their_text() {
        let doc = format!(
            "[{}]",
            vec![r#"{"sku":"SKU-00001","name":"Product 1","quantity":1}"#; 20].join(",")
        );
        let mut cold = Cold::default();
        cold.freeze("k".into(), &[SqlValue::Text(doc.clone())]);
        assert!(
            cold.bytes() < doc.len() / 2,
            "{} of {}",
            cold.bytes(),
            doc.len()
        );
    }

    #[test]
    fn truncated_or_unknown_bytes_are_an_error_not_a_panic() {
        let whole = encode(&values());
        for cut in 1..whole.len() {
            // Either a shorter valid prefix or an error; never a panic.
            let _ = decode(&whole[..cut]);
        }
        assert!(decode(&[TEXT, 9, 0, 0, 0, b'x']).is_err());
        assert!(decode(&[7]).is_err());
        assert!(decode(&[INT, 1, 2]).is_err());
    }

    #[test]
    fn keys_age_by_batch() {
        let mut cold = Cold::default();
        cold.note(1, "a");
        cold.note(1, "b");
        cold.note(2, "c");
        assert!(cold.aged(1 + AGE - 1).is_empty());
        let aged = cold.aged(1 + AGE);
        assert_eq!(aged, vec![(1, vec!["a".to_string(), "b".to_string()])]);
        assert_eq!(cold.aged(2 + AGE).len(), 1);
        assert!(cold.aged(100).is_empty());
    }
}
