//! A provider token's roles: a claim at a dotted path (an array of
//! strings, or a space-separated string such as `scope`), mapped to the
//! platform's roles.

use serde_json::Value;

use crate::Role;

/// The most privileged platform role the token's roles claim maps to;
/// a signed-in caller without one is a customer.
pub(crate) fn role_of(claims: &Value, roles_claim: &str, mapping: &[(String, Role)]) -> Role {
    let mut value = claims;
    for part in roles_claim.split('.') {
        match value.get(part) {
            Some(v) => value = v,
            None => return Role::Customer,
        }
    }
    let names: Vec<&str> = match value {
        Value::String(s) => s.split_whitespace().collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mapped = names.iter().filter_map(|name| {
        mapping
            .iter()
            .find(|(from, _)| from == name)
            .map(|(_, role)| *role)
            .or_else(|| name.parse().ok())
    });
    mapped
        .max_by_key(|role| match role {
            Role::Admin => 3,
            Role::Service => 2,
            Role::Analyst => 1,
            Role::Customer => 0,
        })
        .unwrap_or(Role::Customer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_a_dotted_claim_path_and_the_mapping() {
        let claims = serde_json::json!({
            "realm_access": {"roles": ["offline_access", "shop-admin"]},
            "scope": "openid analyst profile",
        });
        let mapping = vec![("shop-admin".to_string(), Role::Admin)];
        assert_eq!(
            role_of(&claims, "realm_access.roles", &mapping),
            Role::Admin
        );
        assert_eq!(role_of(&claims, "scope", &[]), Role::Analyst);
        assert_eq!(role_of(&claims, "realm_access.roles", &[]), Role::Customer);
        assert_eq!(role_of(&claims, "missing.path", &[]), Role::Customer);
        let both = serde_json::json!({"roles": ["customer", "service"]});
        assert_eq!(role_of(&both, "roles", &[]), Role::Service);
    }
}
