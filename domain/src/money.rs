use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::ValidationError;

/// Active ISO 4217 currency codes.
pub const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD",
    "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
    "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN",
    "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD",
    "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES",
    "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN",
    "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP",
    "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK",
    "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
    "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VED", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// The largest amount, in minor units, that any single price or payment may
/// carry (one trillion minor units). Keeps every total far from `i64` overflow.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;

/// An ISO 4217 currency code, e.g. `EUR`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses an active ISO 4217 code (upper case, three letters).
    ///
    /// # Errors
    /// `unknown_currency` when the code is not an active ISO 4217 code.
    pub fn parse(code: &str) -> Result<Self, ValidationError> {
        match ISO_4217.binary_search(&code) {
            Ok(_) => {
                let b = code.as_bytes();
                Ok(Self([b[0], b[1], b[2]]))
            }
            Err(_) => Err(ValidationError::new(
                "currency",
                "unknown_currency",
                format!("'{code}' is not an ISO 4217 currency code"),
            )),
        }
    }

    /// The three-letter code.
    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII codes in `ISO_4217`.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money: integer minor units and a currency (invariant 10:
/// never floating point). Amounts of different currencies never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in the currency's minor unit (cents for EUR).
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency: Currency,
}

impl Money {
    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self {
            amount_minor: 0,
            currency,
        }
    }

    /// A price or payment amount: `0..=MAX_AMOUNT_MINOR` (or `1..` when
    /// `positive`), reported against `field`.
    ///
    /// # Errors
    /// `amount_out_of_range` when the amount is negative, zero where it must be
    /// positive, or above [`MAX_AMOUNT_MINOR`].
    pub fn parse_amount(
        field: &'static str,
        amount_minor: i64,
        currency: Currency,
        positive: bool,
    ) -> Result<Self, ValidationError> {
        let min = i64::from(positive);
        if !(min..=MAX_AMOUNT_MINOR).contains(&amount_minor) {
            return Err(ValidationError::new(
                field,
                "amount_out_of_range",
                format!("amount_minor must be between {min} and {MAX_AMOUNT_MINOR}"),
            ));
        }
        Ok(Self {
            amount_minor,
            currency,
        })
    }

    /// `self + other`; `None` on a currency mismatch or overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        Some(Money {
            amount_minor: self.amount_minor.checked_add(other.amount_minor)?,
            currency: self.currency,
        })
    }

    /// `self × factor`; `None` on overflow.
    pub fn checked_mul(self, factor: i64) -> Option<Money> {
        Some(Money {
            amount_minor: self.amount_minor.checked_mul(factor)?,
            currency: self.currency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_table_is_sorted_so_binary_search_works() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn currency_parses_known_codes_only() {
        assert_eq!(
            Currency::parse("EUR").map(|c| c.to_string()).ok(),
            Some("EUR".into())
        );
        for bad in ["eur", "EURO", "", "XYZ", "€"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_never_mixes_currencies() {
        let eur = Money::zero(Currency::parse("EUR").unwrap());
        let usd = Money::zero(Currency::parse("USD").unwrap());
        assert_eq!(eur.checked_add(usd), None);
        assert!(eur.checked_add(eur).is_some());
    }

    #[test]
    fn amounts_are_bounded() {
        let eur = Currency::parse("EUR").unwrap();
        assert!(Money::parse_amount("p", -1, eur, false).is_err());
        assert!(Money::parse_amount("p", 0, eur, true).is_err());
        assert!(Money::parse_amount("p", 0, eur, false).is_ok());
        assert!(Money::parse_amount("p", MAX_AMOUNT_MINOR + 1, eur, false).is_err());
    }

    #[test]
    fn money_serializes_as_minor_units_and_code() {
        let m = Money::parse_amount("p", 1999, Currency::parse("EUR").unwrap(), true).unwrap();
        let v = serde_json::to_value(m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"amount_minor": 1999, "currency": "EUR"})
        );
        let back: Money = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_value::<Money>(
            serde_json::json!({"amount_minor": 1, "currency": "ZZZ"})
        )
        .is_err());
    }
}
