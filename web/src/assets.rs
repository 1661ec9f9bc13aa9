//! The embedded files and how one is answered: gzipped when the client
//! accepts it (vendored files are stored gzipped, and unpacked once for a
//! client that does not), a strong ETag, and caching — for a year for
//! vendored files (their names carry the version), revalidated for the
//! console's own.

use std::io::Read;
use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// How a file is embedded.
enum Stored {
    Plain(&'static [u8]),
    Gzip(&'static [u8]),
}

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    content_type: &'static str,
    stored: Stored,
    plain: OnceLock<Vec<u8>>,
    etag: OnceLock<String>,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! vendored {
    ($path:literal, $type:expr, $file:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            stored: Stored::Gzip(include_bytes!(concat!("../vendor/", $file))),
            plain: OnceLock::new(),
            etag: OnceLock::new(),
        }
    };
}

macro_rules! own {
    ($path:literal, $type:expr, $file:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            stored: Stored::Plain(include_bytes!(concat!("../", $file))),
            plain: OnceLock::new(),
            etag: OnceLock::new(),
        }
    };
}

/// What `/docs` loads.
pub static DOCS: [Asset; 2] = [
    vendored!(
        "/assets/vendor/scalar-api-reference-1.76.0.js",
        JS,
        "scalar-api-reference-1.76.0.js.gz"
    ),
    own!("/assets/docs.js", JS, "pages/docs.js"),
];

/// What GraphiQL's page loads.
pub static GRAPHIQL: [Asset; 5] = [
    vendored!(
        "/assets/vendor/react-18.3.1.production.min.js",
        JS,
        "react-18.3.1.production.min.js.gz"
    ),
    vendored!(
        "/assets/vendor/react-dom-18.3.1.production.min.js",
        JS,
        "react-dom-18.3.1.production.min.js.gz"
    ),
    vendored!(
        "/assets/vendor/graphiql-3.9.0.min.js",
        JS,
        "graphiql-3.9.0.min.js.gz"
    ),
    vendored!(
        "/assets/vendor/graphiql-3.9.0.min.css",
        CSS,
        "graphiql-3.9.0.min.css.gz"
    ),
    own!("/assets/graphiql.js", JS, "pages/graphiql.js"),
];

/// The console's files.
pub static CONSOLE: [Asset; 10] = [
    own!("/console/console.css", CSS, "console/console.css"),
    own!("/console/app.js", JS, "console/app.js"),
    own!("/console/api.js", JS, "console/api.js"),
    own!("/console/format.js", JS, "console/format.js"),
    own!("/console/charts.js", JS, "console/charts.js"),
    own!("/console/dashboard.js", JS, "console/dashboard.js"),
    own!("/console/operations.js", JS, "console/operations.js"),
    own!("/console/customers.js", JS, "console/customers.js"),
    own!("/console/live.js", JS, "console/live.js"),
    own!("/console/signin.js", JS, "console/signin.js"),
];

/// Whether `Accept-Encoding` admits gzip.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0" || p == "q=0.0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

impl Asset {
    /// The file's bytes, unpacked.
    fn plain(&self) -> &[u8] {
        match self.stored {
            Stored::Plain(b) => b,
            Stored::Gzip(gz) => self.plain.get_or_init(|| {
                let mut out = Vec::new();
                // The bytes are the build's own, checked by the tests.
                if flate2::read::GzDecoder::new(gz)
                    .read_to_end(&mut out)
                    .is_err()
                {
                    out.clear();
                }
                out
            }),
        }
    }

    fn etag(&self) -> &str {
        self.etag.get_or_init(|| {
            let digest = Sha256::digest(self.plain());
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
    }

    /// The answer to a GET of this file.
    pub fn answer(&self, request: &HeaderMap) -> Response {
        let gzip = matches!(self.stored, Stored::Gzip(_)) && accepts_gzip(request);
        // One validator per representation (RFC 9110: strong ETags differ
        // when the bytes sent do).
        let etag = if gzip {
            format!("{}-gzip\"", self.etag().trim_end_matches('"'))
        } else {
            self.etag().to_string()
        };
        let cache = if matches!(self.stored, Stored::Gzip(_)) {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        let matched = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        let mut response = if matched {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let body = match (&self.stored, gzip) {
                (Stored::Gzip(gz), true) => gz.to_vec(),
                _ => self.plain().to_vec(),
            };
            let mut r = body.into_response();
            if gzip {
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            r
        };
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        super::secure(h);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_file_unpacks() {
        let vendored = DOCS.iter().chain(GRAPHIQL.iter());
        for a in vendored.filter(|a| matches!(a.stored, Stored::Gzip(_))) {
            assert!(a.plain().len() > 1000, "{} is empty or damaged", a.path);
        }
    }

    #[test]
    fn gzip_is_offered_only_when_accepted() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("value"),
            );
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, gzip;q=0.8"));
        assert!(with("*"));
        assert!(!with("br"));
        assert!(!with("gzip;q=0"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
