//! Newtypes parsed at the edge: past `parse`, a value is valid by construction.

use serde::{Deserialize, Serialize};

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The request field at fault (dotted path for nested fields).
    pub field: &'static str,
    /// Stable rule code, e.g. `invalid_email`.
    pub rule: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ValidationError {
    /// A failed check of `field` against `rule`.
    pub fn new(field: &'static str, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            rule,
            message: message.into(),
        }
    }
}

/// Trims `raw` and checks it is 1..=max characters with no control characters.
fn bounded_text(field: &'static str, raw: &str, max: usize) -> Result<String, ValidationError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(ValidationError::new(field, "required", "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(ValidationError::new(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "control_characters",
            "must not contain control characters",
        ));
    }
    Ok(s.to_string())
}

/// Declares a trimmed, length-bounded text newtype.
macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Trims and validates `raw`, reporting errors against `field`.
            ///
            /// # Errors
            /// `required`, `too_long` or `control_characters`.
            pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
                bounded_text(field, raw, $max).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_newtype!(
    /// A person's display name (1..=200 characters).
    PersonName,
    200
);
text_newtype!(
    /// A product's name (1..=200 characters).
    ProductName,
    200
);
text_newtype!(
    /// A free-text reason for a cancellation, failure or refund (1..=500 characters).
    Reason,
    500
);
text_newtype!(
    /// A shipping carrier's name (1..=100 characters).
    Carrier,
    100
);
text_newtype!(
    /// A shipment tracking number (1..=100 characters).
    TrackingNumber,
    100
);

/// A normalized e-mail address: trimmed and lower-cased, so that one address
/// written two ways belongs to one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Normalizes and validates an address (`local@domain.tld`, at most 254
    /// characters, no whitespace).
    ///
    /// # Errors
    /// `invalid_email` naming the broken part.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let err = |m: &str| ValidationError::new("email", "invalid_email", m.to_string());
        let s = raw.trim().to_lowercase();
        if s.is_empty() || s.len() > 254 {
            return Err(err("must be 1 to 254 characters"));
        }
        let (local, domain) = s.split_once('@').ok_or_else(|| err("must contain '@'"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(err("the part before '@' must be 1 to 64 characters"));
        }
        let local_ok = local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(err(
                "the part before '@' has characters an address cannot use",
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(err("the domain must look like example.com"));
        }
        Ok(Self(s))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A catalog stock-keeping unit: 1..=64 of `A-Z 0-9 - _ .`, upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    /// Upper-cases and validates a SKU.
    ///
    /// # Errors
    /// `invalid_sku`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim().to_ascii_uppercase();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric());
        if ok {
            Ok(Self(s))
        } else {
            Err(ValidationError::new(
                "sku",
                "invalid_sku",
                "must be 1 to 64 of A-Z, 0-9, '-', '_', '.', starting with a letter or digit",
            ))
        }
    }

    /// The SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where an order ships to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    /// Street and number.
    pub line1: String,
    /// Optional second line.
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
}

impl ShippingAddress {
    /// Validates every part of an address.
    ///
    /// # Errors
    /// One [`ValidationError`] per broken part.
    pub fn parse(
        line1: &str,
        line2: Option<&str>,
        city: &str,
        postal_code: &str,
        country: &str,
    ) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let mut take = |r: Result<String, ValidationError>| match r {
            Ok(v) => v,
            Err(e) => {
                errors.push(e);
                String::new()
            }
        };
        let line1 = take(bounded_text("shipping_address.line1", line1, 200));
        let line2 = line2
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|l| take(bounded_text("shipping_address.line2", l, 200)));
        let city = take(bounded_text("shipping_address.city", city, 100));
        let postal_code = take(bounded_text(
            "shipping_address.postal_code",
            postal_code,
            20,
        ));
        let country = country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
            errors.push(ValidationError::new(
                "shipping_address.country",
                "invalid_country",
                "must be an ISO 3166-1 alpha-2 code such as DE",
            ));
        }
        if errors.is_empty() {
            Ok(Self {
                line1,
                line2,
                city,
                postal_code,
                country,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalized() {
        let e = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "ada.lovelace@example.com");
    }

    #[test]
    fn bad_emails_are_rejected() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@@example.com",
            "ada@-example.com",
            ".ada@example.com",
            "ada..b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(PersonName::parse("name", "  Ada ").unwrap().as_str(), "Ada");
        assert_eq!(
            PersonName::parse("name", "   ").unwrap_err().rule,
            "required"
        );
        assert_eq!(
            PersonName::parse("name", &"x".repeat(201))
                .unwrap_err()
                .rule,
            "too_long"
        );
        assert_eq!(
            PersonName::parse("name", "a\u{0}b").unwrap_err().rule,
            "control_characters"
        );
    }

    #[test]
    fn skus_are_upper_cased_and_checked() {
        assert_eq!(Sku::parse("tee-blue-m").unwrap().as_str(), "TEE-BLUE-M");
        for bad in ["", "-A", "a b", "ä", &"A".repeat(65)] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses_report_every_broken_part() {
        let errs = ShippingAddress::parse("", None, "", "1", "Germany").unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "shipping_address.line1",
                "shipping_address.city",
                "shipping_address.country"
            ]
        );
        let ok = ShippingAddress::parse("Main St 1", Some(" "), "Berlin", "10115", "de").unwrap();
        assert_eq!(ok.country, "DE");
        assert_eq!(ok.line2, None);
    }
}

/// A preferred language tag (BCP 47 shape: `en`, `de-AT`, `pt-BR`): 2..=35
/// ASCII letters, digits and hyphens, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Locale(String);

impl Locale {
    /// Validates `raw` (trimmed) as a language tag.
    ///
    /// # Errors
    /// `invalid_locale`.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        let shaped = (2..=35).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !s.contains("--")
            && !s.ends_with('-');
        if !shaped {
            return Err(ValidationError::new(
                field,
                "invalid_locale",
                "must be a language tag such as en, de-AT or pt-BR",
            ));
        }
        Ok(Self(s.to_string()))
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `en`: for users who named none (and events written before
/// `UserRegistered` v2).
impl Default for Locale {
    fn default() -> Self {
        Self("en".into())
    }
}
