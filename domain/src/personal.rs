//! Personal data in events: a value stored sealed with its owner's data key
//! (crypto-shredding, ARCHITECTURE invariant 12).
//!
//! The domain never encrypts or decrypts; it only carries [`Personal`]
//! values. The application seals them before a command is decided, and
//! whoever needs the plain value (the customer read model) reveals it with
//! the owner's key, which is gone once the owner is forgotten.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Sealed bytes: base64url (no padding) of `nonce ‖ ciphertext ‖ tag`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(pub String);

/// A personal value as an event or a state holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Personal<T> {
    /// The plain value: revealed with its key, or written before personal
    /// data was sealed (those events stay readable as they are).
    Clear(T),
    /// Sealed with the owner's data key.
    Sealed(Sealed),
    /// The owner was forgotten: the value can never be read again.
    Forgotten,
}

impl<T> Personal<T> {
    /// The plain value, when it is in the clear.
    pub fn clear(&self) -> Option<&T> {
        match self {
            Self::Clear(v) => Some(v),
            Self::Sealed(_) | Self::Forgotten => None,
        }
    }

    /// Whether the value is sealed (needs its key to be read).
    pub fn is_sealed(&self) -> bool {
        matches!(self, Self::Sealed(_))
    }
}

/// How a [`Personal`] value is stored: the plain value's own JSON, or a
/// one-key object that no personal value's JSON is.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored<T> {
    Sealed { sealed: Sealed },
    Forgotten { forgotten: bool },
    Clear(T),
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Clear(v) => v.serialize(s),
            Self::Sealed(sealed) => Stored::<&T>::Sealed {
                sealed: sealed.clone(),
            }
            .serialize(s),
            Self::Forgotten => Stored::<&T>::Forgotten { forgotten: true }.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Stored::<T>::deserialize(d)? {
            Stored::Sealed { sealed } => Self::Sealed(sealed),
            Stored::Forgotten { .. } => Self::Forgotten,
            Stored::Clear(v) => Self::Clear(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Email, ShippingAddress};

    #[test]
    fn every_form_round_trips_and_plain_values_keep_their_old_json() {
        let email = Email::parse("ada@example.com").unwrap();
        let clear = Personal::Clear(email.clone());
        assert_eq!(
            serde_json::to_value(&clear).unwrap(),
            json!("ada@example.com")
        );
        let sealed: Personal<Email> = Personal::Sealed(Sealed("AAAA".into()));
        assert_eq!(
            serde_json::to_value(&sealed).unwrap(),
            json!({"sealed": "AAAA"})
        );
        let forgotten: Personal<Email> = Personal::Forgotten;
        for p in [clear, sealed, forgotten] {
            let back: Personal<Email> =
                serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
            assert_eq!(back, p);
        }
    }

    #[test]
    fn a_sealed_address_is_not_read_as_an_address_nor_an_address_as_sealed() {
        let address = ShippingAddress::parse("Main St 1", None, "Berlin", "10115", "DE").unwrap();
        let json = serde_json::to_value(Personal::Clear(address.clone())).unwrap();
        let back: Personal<ShippingAddress> = serde_json::from_value(json).unwrap();
        assert_eq!(back, Personal::Clear(address));
        let sealed: Personal<ShippingAddress> =
            serde_json::from_value(json!({"sealed": "xyz"})).unwrap();
        assert!(sealed.is_sealed());
        assert!(serde_json::from_value::<Personal<ShippingAddress>>(json!({"line1": 1})).is_err());
    }
}
