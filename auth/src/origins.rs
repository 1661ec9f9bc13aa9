//! Which browser origins may call the APIs: the CORS allow-list, and the
//! check of a WebSocket upgrade's `Origin` (browsers send cookies and
//! credentials with cross-site WebSocket handshakes, and CORS does not
//! apply to them, so the server must look itself).

use http::HeaderValue;

/// The configured origins (`--cors-origin`, repeatable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    exact: Vec<String>,
    any: bool,
}

/// Why an origin was refused as configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--cors-origin '{0}' is not an origin: use scheme://host[:port] (no path), or *")]
pub struct BadOrigin(pub String);

impl Origins {
    /// Parses the configured list: exact origins (`https://shop.example`,
    /// `http://localhost:3000`) or `*` (any origin; tokens still required).
    ///
    /// # Errors
    /// [`BadOrigin`] for anything that is not an origin.
    pub fn parse(raw: &[String]) -> Result<Self, BadOrigin> {
        let mut origins = Self::default();
        for entry in raw.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            if entry == "*" {
                origins.any = true;
                continue;
            }
            let (scheme, rest) = entry
                .split_once("://")
                .ok_or_else(|| BadOrigin(entry.to_string()))?;
            let host_ok = !rest.is_empty()
                && !rest.contains(['/', '?', '#', '@', ' '])
                && rest
                    .rsplit_once(':')
                    .is_none_or(|(_, port)| port.parse::<u16>().is_ok() || rest.ends_with(']'));
            if !matches!(scheme, "http" | "https") || !host_ok {
                return Err(BadOrigin(entry.to_string()));
            }
            origins.exact.push(entry.to_ascii_lowercase());
        }
        Ok(origins)
    }

    /// Whether cross-origin browser access is configured at all.
    pub fn is_configured(&self) -> bool {
        self.any || !self.exact.is_empty()
    }

    /// Whether any origin may call.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// The exact origins, as header values.
    pub fn exact(&self) -> Vec<HeaderValue> {
        self.exact
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect()
    }

    /// Whether a browser page at `origin` may use this API.
    pub fn allows(&self, origin: &str) -> bool {
        self.any || self.exact.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Whether a WebSocket upgrade with these headers may proceed: clients
    /// that are not browsers send no `Origin`; a browser's page may connect
    /// from its own origin (same host and port as `Host`) or a configured one.
    pub fn allows_websocket(
        &self,
        origin: Option<&HeaderValue>,
        host: Option<&HeaderValue>,
    ) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if self.allows(origin) {
            return true;
        }
        let same_host = origin.split_once("://").map(|(_, authority)| authority);
        match (same_host, host.and_then(|h| h.to_str().ok())) {
            (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(raw: &[&str]) -> Result<Origins, BadOrigin> {
        Origins::parse(&raw.iter().map(|s| (*s).to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn origins_are_exact() {
        let o = list(&["http://localhost:3000", "https://Shop.Example"]).unwrap();
        assert!(o.allows("http://localhost:3000"));
        assert!(o.allows("https://shop.example"));
        assert!(!o.allows("http://localhost:3001"));
        assert!(!o.allows("https://shop.example.evil"));
        assert!(!o.allows("null"));
        for bad in [
            "localhost:3000",
            "http://x/path",
            "ftp://x",
            "http://",
            "http://a:b",
            "http://u@x",
        ] {
            assert!(list(&[bad]).is_err(), "{bad}");
        }
        assert!(list(&["*"]).unwrap().allows("https://anything.example"));
        assert!(!Origins::default().is_configured());
    }

    #[test]
    fn websockets_from_foreign_pages_are_refused() {
        let o = list(&["http://localhost:3000"]).unwrap();
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        // No Origin: not a browser.
        assert!(o.allows_websocket(None, Some(&h("api:8080"))));
        assert!(o.allows_websocket(Some(&h("http://localhost:3000")), Some(&h("api:8080"))));
        // Same origin as the API itself (GraphiQL).
        assert!(o.allows_websocket(Some(&h("http://api:8080")), Some(&h("api:8080"))));
        assert!(!o.allows_websocket(Some(&h("http://evil.example")), Some(&h("api:8080"))));
        assert!(!Origins::default()
            .allows_websocket(Some(&h("http://evil.example")), Some(&h("api:8080"))));
    }
}
