//! shopstream's browser pages: the operator and analyst console
//! (`/console`), the REST reference (`/docs`, Scalar) and GraphiQL. Every
//! script, style sheet and font they load is embedded in the binary — the
//! console's own files and, vendored from the npm registry at pinned
//! versions (`web/vendor/PINNED`, checked byte for byte by
//! `scripts/vendor-web --check`), Scalar, GraphiQL and React — so the pages
//! work offline and behind [`CSP`], which allows no inline script and no
//! other origin.
//!
//! # Layout
//! - `assets`: the embedded files and how one is answered (gzip, ETag, caching).
//! - this file: the routers each role mounts and the HTML of the pages.

mod assets;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use assets::Asset;

/// The Content-Security-Policy of every page: scripts, styles, fonts and
/// connections from the page's own origin only (inline styles are allowed:
/// the vendored components set them; inline scripts are not).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The identity provider the console signs in with (the OAuth 2.0
/// authorization-code flow with PKCE, as a public client).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignIn {
    /// The issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
}

impl SignIn {
    /// `scheme://host[:port]` of the issuer: the one other origin the
    /// console's page may connect to (discovery and the token endpoint).
    fn origin(&self) -> Option<String> {
        let (scheme, rest) = self.issuer.split_once("://")?;
        let host = rest.split(['/', '?', '#']).next()?;
        let ok = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
        ((scheme == "https" || scheme == "http") && !host.is_empty() && host.chars().all(ok))
            .then(|| format!("{scheme}://{host}"))
    }
}

/// [`CSP`], also allowing connections to `origin`.
fn policy(origin: Option<&str>) -> String {
    match origin {
        Some(o) => CSP.replace("connect-src 'self';", &format!("connect-src 'self' {o};")),
        None => CSP.to_string(),
    }
}

/// An HTML page with the platform's security headers.
fn page(html: &'static str) -> Response {
    page_with(html, CSP.to_string())
}

fn page_with(html: &'static str, csp: String) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    secure(response.headers_mut());
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The headers every page and asset carries.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Routes serving `assets` at their paths.
fn serve(assets: &'static [Asset]) -> Router {
    assets.iter().fold(Router::new(), |router, asset| {
        router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { asset.answer(&headers) }),
        )
    })
}

/// `/docs`: the REST API's reference (Scalar, reading `/openapi.json`).
pub fn docs() -> Router {
    serve(&assets::DOCS).route(
        "/docs",
        get(|| async { page(include_str!("../pages/docs.html")) }),
    )
}

/// GraphiQL's page (mounted by the query API at `GET /graphql`).
pub fn graphiql_page() -> Response {
    page(include_str!("../pages/graphiql.html"))
}

/// The scripts and styles GraphiQL's page loads.
pub fn graphiql_assets() -> Router {
    serve(&assets::GRAPHIQL)
}

/// `/console`: the console's page and files, and `/console/config.json`
/// (the identity provider it signs in with, or `null`).
pub fn console(sign_in: Option<SignIn>) -> Router {
    let csp = policy(sign_in.as_ref().and_then(SignIn::origin).as_deref());
    let index = move || {
        let csp = csp.clone();
        async move { page_with(include_str!("../console/index.html"), csp) }
    };
    let config = serde_json::json!({ "signIn": sign_in }).to_string();
    let config = move || {
        let body = config.clone();
        async move {
            let mut r = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            secure(r.headers_mut());
            r
        }
    };
    serve(&assets::CONSOLE)
        .route("/console", get(index.clone()))
        .route("/console/", get(index))
        .route("/console/config.json", get(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get_with(router: Router, path: &str, accept: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT_ENCODING, a);
        }
        router
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("response")
    }

    #[tokio::test]
    async fn pages_carry_the_policy_and_reference_only_embedded_files() {
        for (router, path) in [(docs(), "/docs"), (console(None), "/console")] {
            let r = get_with(router, path, None).await;
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        }
        let html = include_str!("../pages/docs.html").to_string()
            + include_str!("../pages/graphiql.html")
            + include_str!("../console/index.html");
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script>"), "no inline script");
        for src in html
            .split("src=\"")
            .skip(1)
            .chain(html.split("href=\"").skip(1))
        {
            let path = src.split('"').next().unwrap_or_default();
            if !path.starts_with('/') {
                continue; // in-page links, the empty data: icon
            }
            let all = assets::DOCS
                .iter()
                .chain(assets::GRAPHIQL.iter())
                .chain(assets::CONSOLE.iter());
            assert!(
                all.clone().any(|a| a.path == path),
                "{path} is referenced but not embedded"
            );
        }
    }

    #[tokio::test]
    async fn the_console_may_connect_to_its_identity_provider_only() {
        let sign_in = SignIn {
            issuer: "https://id.example.com:8443/realms/shop".into(),
            client_id: "shop-console".into(),
        };
        let r = get_with(console(Some(sign_in)), "/console/", None).await;
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp");
        assert!(
            csp.contains("connect-src 'self' https://id.example.com:8443;"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self';"), "{csp}");
        let hostile = SignIn {
            issuer: "https://id.example.com; script-src *".into(),
            client_id: "x".into(),
        };
        assert_eq!(hostile.origin(), None);
        let config = get_with(console(None), "/console/config.json", None).await;
        let body = axum::body::to_bytes(config.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], br#"{"signIn":null}"#);
    }

    #[tokio::test]
    async fn vendored_files_are_sent_gzipped_or_plain_with_a_validator() {
        let path = "/assets/vendor/react-18.3.1.production.min.js";
        let gz = get_with(graphiql_assets(), path, Some("gzip, br")).await;
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        let etag = gz.headers()[header::ETAG].clone();
        let plain = get_with(graphiql_assets(), path, None).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let body = axum::body::to_bytes(plain.into_body(), 1 << 20)
            .await
            .expect("body");
        assert!(
            body.starts_with(b"/**") || body.starts_with(b"/*"),
            "JavaScript"
        );
        let again = graphiql_assets()
            .oneshot(
                Request::get(path)
                    .header(header::ACCEPT_ENCODING, "gzip")
                    .header(header::IF_NONE_MATCH, etag)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
}
