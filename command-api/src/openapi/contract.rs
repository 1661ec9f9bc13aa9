//! What the server accepts, stated in the OpenAPI document: the rule of
//! every request field (lengths, patterns, formats, bounds, enums), the
//! headers commands read, and that a PATCH must change something. The
//! utoipa annotations describe shapes; these rules are the domain's
//! parsers written as JSON Schema, and the tests below run samples of each
//! through the parsers so the two cannot drift apart silently.

use serde_json::{json, Value};

/// Text the domain trims, requires non-empty, bounds in characters and
/// refuses with control characters (`bounded_text`).
fn text(max: usize) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": max,
        "pattern": TEXT_PATTERN,
    })
}

/// Some character that is neither whitespace nor a control character,
/// and no control character anywhere.
pub const TEXT_PATTERN: &str =
    r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

/// Addresses `Email::parse` accepts (a subset: dotted local parts of at
/// most two atoms, up to four domain labels).
pub const EMAIL_PATTERN: &str = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30})?@([A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,12}$";

/// SKUs `Sku::parse` accepts.
pub const SKU_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

/// Language tags `Locale::parse` accepts (`en`, `de-AT`, `pt-BR`).
pub const LOCALE_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$";

/// ISO 3166-1 alpha-2 (either case).
pub const COUNTRY_PATTERN: &str = r"^[A-Za-z]{2}$";

/// `If-Match` as the server reads it: the quoted version of an `ETag`.
pub const IF_MATCH_PATTERN: &str = r#"^(W/)?"[0-9]{1,18}"$"#;

/// Idempotency keys: 1..=255 visible ASCII characters.
pub const IDEMPOTENCY_KEY_PATTERN: &str = r"^[!-~]{1,255}$";

/// Correlation ids: 1..=128 ASCII characters, no surrounding space.
pub const CORRELATION_ID_PATTERN: &str = r"^[!-~]([ -~]{0,126}[!-~])?$";

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

fn sku() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 64, "pattern": SKU_PATTERN})
}

fn currency() -> Value {
    json!({"type": "string", "enum": domain::ISO_4217})
}

fn amount(min: i64) -> Value {
    json!({"type": "integer", "format": "int64", "minimum": min, "maximum": domain::MAX_AMOUNT_MINOR})
}

fn quantity() -> Value {
    json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": domain::order::MAX_QUANTITY})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `(schema, property, rule)` for every request body field.
fn field_rules() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "RegisterUser",
            "email",
            json!({"type": "string", "minLength": 6, "maxLength": 254, "pattern": EMAIL_PATTERN}),
        ),
        ("RegisterUser", "name", text(200)),
        (
            "RegisterUser",
            "locale",
            json!({"type": ["string", "null"], "minLength": 2, "maxLength": 35, "pattern": LOCALE_PATTERN}),
        ),
        (
            "RegisterUser",
            "marketing_consent",
            json!({"type": ["boolean", "null"], "enum": [true, false, null]}),
        ),
        ("UpdateUser", "name", text(200)),
        ("UpdateUser", "shipping_address", reference("AddressBody")),
        ("AddressBody", "line1", text(200)),
        (
            "AddressBody",
            "line2",
            json!({"type": ["string", "null"], "maxLength": 200, "pattern": r"^[^\x00-\x1f\x7f-\x9f]*$"}),
        ),
        ("AddressBody", "city", text(100)),
        ("AddressBody", "postal_code", text(20)),
        (
            "AddressBody",
            "country",
            json!({"type": "string", "pattern": COUNTRY_PATTERN}),
        ),
        ("CreateProduct", "sku", sku()),
        ("CreateProduct", "name", text(200)),
        ("UpdateProduct", "name", text(200)),
        ("UpdateProduct", "unit_price", reference("MoneyBody")),
        ("MoneyBody", "amount_minor", amount(0)),
        ("MoneyBody", "currency", currency()),
        ("CreateOrder", "customer_id", uuid()),
        ("CreateOrder", "currency", currency()),
        ("AddItem", "sku", sku()),
        ("AddItem", "quantity", quantity()),
        ("ChangeQuantity", "quantity", quantity()),
        ("MarkPaid", "payment_id", uuid()),
        ("Ship", "carrier", text(100)),
        ("Ship", "tracking_number", text(100)),
        ("ReasonBody", "reason", text(500)),
        ("InitiatePayment", "order_id", uuid()),
        ("AmountBody", "amount_minor", amount(1)),
        ("RefundBody", "amount_minor", amount(1)),
        ("RefundBody", "reason", text(500)),
    ]
}

/// Applies the rules to a generated document.
pub fn tighten(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    for (schema, field, rule) in field_rules() {
        let property = &mut schemas[schema]["properties"][field];
        // Keep the generated description and example.
        let mut merged = rule;
        for key in ["description", "example"] {
            if let Some(v) = property.get(key) {
                merged[key] = v.clone();
            }
        }
        *property = merged;
    }
    // A PATCH must change something: `{}` is refused.
    for patch in ["UpdateUser", "UpdateProduct"] {
        schemas[patch]["minProperties"] = json!(1);
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, operations) in paths.iter_mut() {
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            let products = path.starts_with("/v1/products/");
            // `get_mut`: indexing would insert `"parameters": null`.
            if let Some(params) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            {
                for param in params.iter_mut() {
                    if param["in"] != "path" {
                        continue;
                    }
                    param["schema"] = match param["name"].as_str() {
                        Some("sku") => sku(),
                        Some("id") if products => sku(),
                        Some("id") => uuid(),
                        _ => continue,
                    };
                }
            }
            if method != "get" && path.starts_with("/v1/") {
                add_command_headers(operation);
            }
        }
    }
}

/// The optional headers every command reads.
fn add_command_headers(operation: &mut Value) {
    let headers = [
        ("Idempotency-Key", IDEMPOTENCY_KEY_PATTERN, "Makes the command safe to retry: the same key with the same body returns the first answer and appends nothing; the same key with another body is refused (422). Kept 48 hours."),
        ("If-Match", IF_MATCH_PATTERN, "The version the command expects (the ETag of the last answer, e.g. \"3\"); 412 when the aggregate has moved on."),
        ("X-Correlation-Id", CORRELATION_ID_PATTERN, "Correlates the command's events with the caller's work (default: the request id)."),
    ];
    let Some(operation) = operation.as_object_mut() else {
        return;
    };
    let Some(params) = operation
        .entry("parameters")
        .or_insert_with(|| json!([]))
        .as_array_mut()
    else {
        return;
    };
    for (name, pattern, description) in headers {
        params.push(json!({
            "name": name,
            "in": "header",
            "required": false,
            "description": description,
            "schema": {"type": "string", "pattern": pattern},
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, s: &str) -> bool {
        regex::Regex::new(pattern).expect("pattern").is_match(s)
    }

    #[test]
    fn text_rule_is_the_domains() {
        for ok in ["a", " a ", "Ada Lovelace", "名前", "a\u{a0}b"] {
            assert!(matches(TEXT_PATTERN, ok), "{ok:?}");
            assert!(domain::PersonName::parse("name", ok).is_ok(), "{ok:?}");
        }
        for bad in ["", " ", "\u{3000}", "a\nb", "a\u{7f}", "\t"] {
            assert!(!matches(TEXT_PATTERN, bad), "{bad:?}");
            assert!(domain::PersonName::parse("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn email_pattern_is_a_subset_of_the_parser() {
        for ok in [
            "ada@example.com",
            "A.B@Sub.Example.ORG",
            "x+tag@a-b.co",
            "!#$%&'*+/=?^_`{|}~-@a.io",
        ] {
            assert!(matches(EMAIL_PATTERN, ok), "{ok:?}");
            assert!(domain::Email::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a@b", "a..b@c.de", "a@-b.de", ".a@b.de", "a@b.de."] {
            assert!(!matches(EMAIL_PATTERN, bad), "{bad:?}");
        }
    }

    #[test]
    fn locale_pattern_is_the_parser() {
        for ok in ["en", "de-AT", "pt-BR", "zh-Hant-TW", "x1"] {
            assert!(matches(LOCALE_PATTERN, ok), "{ok:?}");
            assert!(domain::Locale::parse("locale", ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "1en", "en-", "en--US", "e n", "de_AT", "é"] {
            assert!(!matches(LOCALE_PATTERN, bad), "{bad:?}");
            assert!(domain::Locale::parse("locale", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sku_and_country_patterns_are_the_parsers() {
        for ok in ["TEE-1", "tee.blue_m", "9"] {
            assert!(matches(SKU_PATTERN, ok));
            assert!(domain::Sku::parse(ok).is_ok());
        }
        for bad in ["-A", "", "A B", "ä"] {
            assert!(!matches(SKU_PATTERN, bad));
            assert!(domain::Sku::parse(bad).is_err());
        }
        assert!(matches(COUNTRY_PATTERN, "de"));
        assert!(!matches(COUNTRY_PATTERN, "DEU"));
    }

    #[test]
    fn every_rule_names_a_generated_property() {
        let mut doc = serde_json::to_value(<super::super::ApiDoc as utoipa::OpenApi>::openapi())
            .expect("document");
        let before = doc.clone();
        for (schema, field, _) in field_rules() {
            assert!(
                before["components"]["schemas"][schema]["properties"][field].is_object(),
                "{schema}.{field} is not in the generated document"
            );
        }
        tighten(&mut doc);
        // Every string and integer in a request body has a rule.
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for (name, schema) in schemas {
            if matches!(
                name.as_str(),
                "Accepted" | "EventView" | "FieldError" | "Problem" | "StreamView"
            ) {
                continue;
            }
            for (field, property) in schema["properties"].as_object().expect("properties") {
                let ruled = property.get("pattern").is_some()
                    || property.get("enum").is_some()
                    || property.get("format").is_some_and(|f| f == "uuid")
                    || property.get("maximum").is_some()
                    || property.get("$ref").is_some();
                assert!(ruled, "{name}.{field} has no rule: {property}");
            }
        }
    }
}
