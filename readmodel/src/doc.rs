//! A read-model row's JSON document as the query side holds it: the stored
//! text, parsed into the read model's own document type on first use.
//!
//! Most queries select only indexed columns, and parsing twenty order
//! documents nobody asked for was a visible share of a `customer` query's
//! time, so the parse waits until a resolver asks. The type is the one the
//! fold writes ([`crate::models::customer::Customer`],
//! [`crate::models::orders::OrderView`]): a field renamed in a fold fails to
//! compile on the read side, and a document that does not parse is an
//! error, never a row of zeros.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A stored document that does not parse as its type (the projection's
/// version was not bumped when its document changed, or the row is corrupt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a read-model document is unreadable: {0}")]
pub struct DocError(pub String);

/// A document, parsed on first use.
#[derive(Debug)]
pub struct Doc<T> {
    raw: String,
    parsed: OnceLock<Result<T, DocError>>,
}

impl<T> Clone for Doc<T> {
    fn clone(&self) -> Self {
        // The parse is cheap to redo and clones are rare (subscriptions).
        Self::new(self.raw.clone())
    }
}

impl<T> Doc<T> {
    /// A document from its stored text.
    pub fn new(raw: String) -> Self {
        Self {
            raw,
            parsed: OnceLock::new(),
        }
    }

    /// The stored text.
    pub fn raw(&self) -> &str {
        &self.raw
    }
}

impl<T: DeserializeOwned> Doc<T> {
    /// The parsed document.
    ///
    /// # Errors
    /// [`DocError`] when the stored text is not a `T`.
    pub fn get(&self) -> Result<&T, DocError> {
        self.parsed
            .get_or_init(|| serde_json::from_str(&self.raw).map_err(|e| DocError(e.to_string())))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl<T> From<String> for Doc<T> {
    fn from(raw: String) -> Self {
        Self::new(raw)
    }
}

impl<T> PartialEq for Doc<T> {
    /// Two documents are equal when their stored text is.
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<T: DeserializeOwned + Serialize> Serialize for Doc<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().map_err(serde::ser::Error::custom)?.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Row {
        captured_minor: i64,
    }

    #[test]
    fn a_document_parses_once_into_its_type() {
        let doc = Doc::<Row>::new(r#"{"captured_minor": 250}"#.into());
        assert_eq!(
            doc.get(),
            Ok(&Row {
                captured_minor: 250
            })
        );
    }

    #[test]
    fn a_renamed_field_is_an_error_not_a_zero() {
        let doc = Doc::<Row>::new(r#"{"captured": 250}"#.into());
        assert!(doc.get().is_err());
    }
}
