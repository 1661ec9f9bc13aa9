//! Tokens from an identity provider: a real OIDC discovery document and
//! JWKS served over HTTP by the test (keys generated here), the server
//! started with `--oidc-issuer`. Sign-up links the provider's subject to
//! the new user; every refusal is a `401` problem (REST) and
//! `UNAUTHENTICATED` (GraphQL); keys rotate mid-test; the provider goes
//! away; and a server whose provider is down at start says why.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde_json::{json, Value};

use crate::helpers::{run_cli, Server, BIN};

const AUDIENCE: &str = "shop-frontend";

/// A signing key and its public JWK.
struct Key {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    /// The public key's DER (for the algorithm-confusion forgery).
    public_der: Vec<u8>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key(kid: &str) -> Key {
    let rsa = Rsa::generate(2048).expect("rsa");
    Key {
        kid: kid.into(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(&rsa.private_key_to_der().expect("der")),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())}),
        public_der: rsa.public_key_to_der_pkcs1().expect("public der"),
    }
}

fn ec_key(kid: &str) -> Key {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
    let ec = EcKey::generate(&group).expect("ec");
    let (mut x, mut y) = (
        openssl::bn::BigNum::new().expect("x"),
        openssl::bn::BigNum::new().expect("y"),
    );
    ec.public_key()
        .affine_coordinates(
            &group,
            &mut x,
            &mut y,
            &mut BigNumContext::new().expect("ctx"),
        )
        .expect("coordinates");
    let pad = |n: &openssl::bn::BigNum| b64(&n.to_vec_padded(32).expect("pad"));
    let public_der = ec.public_key_to_der().expect("public der");
    let pkcs8 = PKey::from_ec_key(ec)
        .expect("pkey")
        .private_key_to_pkcs8()
        .expect("pkcs8");
    Key {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(&pkcs8),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": pad(&x), "y": pad(&y)}),
        public_der,
    }
}

fn ed_key(kid: &str) -> Key {
    let key = PKey::generate_ed25519().expect("ed25519");
    Key {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(&key.private_key_to_pkcs8().expect("pkcs8")),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                    "x": b64(&key.raw_public_key().expect("raw"))}),
        public_der: key.public_key_to_der().expect("public der"),
    }
}

/// The identity provider the test runs: discovery and JWKS over HTTP, and
/// for the console's sign-in an authorization endpoint (which approves at
/// once) and a token endpoint checking the PKCE verifier.
#[derive(Clone)]
struct Idp {
    issuer: Arc<Mutex<String>>,
    jwks: Arc<Mutex<Vec<Value>>>,
    up: Arc<AtomicBool>,
    jwks_hits: Arc<AtomicUsize>,
    /// Issued codes.
    codes: Arc<Mutex<std::collections::HashMap<String, Grant>>>,
    /// The access token the token endpoint hands out.
    issue: Arc<Mutex<Option<String>>>,
    /// Codes exchanged with the right verifier.
    exchanges: Arc<AtomicUsize>,
}

/// What an issued code was granted for: client id, redirect URI, S256 challenge.
type Grant = (String, String, String);

const CONSOLE_CLIENT: &str = "shop-console";

/// `GET …/auth`: approves the request at once, sending the browser back
/// with a code.
async fn authorize(
    State(idp): State<Idp>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code"
        || get("client_id") != CONSOLE_CLIENT
        || get("code_challenge_method") != "S256"
        || get("code_challenge").len() != 43
        || get("state").is_empty()
    {
        return (StatusCode::BAD_REQUEST, "invalid authorization request").into_response();
    }
    let code = uuid::Uuid::new_v4().to_string();
    idp.codes.lock().expect("codes").insert(
        code.clone(),
        (get("client_id"), get("redirect_uri"), get("code_challenge")),
    );
    let back = format!("{}?code={code}&state={}", get("redirect_uri"), get("state"));
    (StatusCode::FOUND, [(axum::http::header::LOCATION, back)]).into_response()
}

/// `POST …/token` (form): the code, once, for its client and redirect URI,
/// with the verifier whose SHA-256 is the challenge.
async fn token(State(idp): State<Idp>, body: String) -> Response {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let issued = idp.codes.lock().expect("codes").remove(&get("code"));
    let verified = issued.is_some_and(|(client, redirect, challenge)| {
        get("grant_type") == "authorization_code"
            && client == get("client_id")
            && redirect == get("redirect_uri")
            && b64(&openssl::sha::sha256(get("code_verifier").as_bytes())) == challenge
    });
    let cors = [(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];
    if !verified {
        return (
            StatusCode::BAD_REQUEST,
            cors,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    idp.exchanges.fetch_add(1, Ordering::SeqCst);
    let token = idp.issue.lock().expect("token").clone();
    (
        cors,
        Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 300})),
    )
        .into_response()
}

async fn discovery(State(idp): State<Idp>) -> Response {
    if !idp.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let issuer = idp.issuer.lock().expect("issuer").clone();
    let cors = [(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];
    let doc = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
        "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{issuer}/protocol/openid-connect/token")});
    (cors, Json(doc)).into_response()
}

async fn jwks(State(idp): State<Idp>) -> Response {
    idp.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if !idp.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = idp.jwks.lock().expect("jwks").clone();
    Json(json!({ "keys": keys })).into_response()
}

impl Idp {
    async fn start(keys: &[&Key]) -> Self {
        let idp = Self {
            issuer: Arc::default(),
            jwks: Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect())),
            up: Arc::new(AtomicBool::new(true)),
            jwks_hits: Arc::default(),
            codes: Arc::default(),
            issue: Arc::default(),
            exchanges: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        *idp.issuer.lock().expect("issuer") = format!(
            "http://{}/realms/shop",
            listener.local_addr().expect("addr")
        );
        let app = Router::new()
            .route(
                "/realms/shop/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/realms/shop/jwks", get(jwks))
            .route("/realms/shop/protocol/openid-connect/auth", get(authorize))
            .route(
                "/realms/shop/protocol/openid-connect/token",
                axum::routing::post(token),
            )
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        idp
    }

    fn issuer(&self) -> String {
        self.issuer.lock().expect("issuer").clone()
    }

    fn publish(&self, key: &Key) {
        self.jwks.lock().expect("jwks").push(key.jwk.clone());
    }

    /// Claims a Keycloak token carries, for `sub` with realm roles `roles`.
    fn claims(&self, sub: &str, roles: &[&str]) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": self.issuer(), "aud": AUDIENCE, "sub": sub, "iat": now,
               "exp": now + 300, "realm_access": {"roles": roles}})
    }
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

fn with(claims: &Value, changes: Value) -> Value {
    let mut c = claims.clone();
    for (k, v) in changes.as_object().expect("object") {
        c[k] = v.clone();
    }
    c
}

async fn start_server(data: &std::path::Path, issuer: &str) -> Server {
    Server::start_bin(
        BIN,
        &[
            "serve",
            "--oidc-issuer",
            issuer,
            "--jwt-audience",
            AUDIENCE,
            "--roles-claim",
            "realm_access.roles",
            "--role-mapping",
            "shop-admin=admin",
            "--jwks-refetch-interval",
            "2s",
        ],
        data,
        None,
    )
    .await
}

/// A token is refused on both APIs, with a 401 problem and `UNAUTHENTICATED`.
async fn assert_refused(server: &Server, token: &str, why: &str) {
    let resp = server
        .client()
        .post(format!("{}/v1/orders", server.base()))
        .bearer_auth(token)
        .json(&json!({"customer_id": uuid::Uuid::new_v4(), "currency": "EUR"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401, "{why}: REST status");
    assert_eq!(
        crate::helpers::media_type(&resp),
        "application/problem+json",
        "{why}"
    );
    let (_, body) = server
        .graphql(Some(token), None, "{ __typename }", Value::Null)
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{why}: {body}"
    );
}

#[tokio::test]
async fn provider_tokens_sign_up_act_and_every_forgery_is_refused() {
    let (rsa, ec, ed) = (rsa_key("rsa-1"), ec_key("ec-1"), ed_key("ed-1"));
    let idp = Idp::start(&[&rsa, &ec, &ed]).await;
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_server(data.path(), &idp.issuer()).await;

    // Sign-up with a provider token links the subject to the new user.
    let customer = sign(&rsa, &idp.claims("kc-alice", &[]));
    let body = json!({"email": "alice@example.com", "name": "Alice"});
    let (status, user) = server.post("/v1/users", Some(&customer), body).await;
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_str().expect("id").to_string();
    let again = json!({"email": "alice2@example.com", "name": "Alice"});
    let (status, problem) = server.post("/v1/users", Some(&customer), again).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["type"], "urn:shopstream:problem:identity_taken");
    // The provider's subject acts as that user (an EdDSA token of the same subject too).
    let order = json!({"customer_id": user_id, "currency": "EUR"});
    let (status, created) = server.post("/v1/orders", Some(&customer), order).await;
    assert_eq!(status, 201, "{created}");
    let ed_token = sign(&ed, &idp.claims("kc-alice", &[]));
    let (status, body) = server
        .graphql(
            Some(&ed_token),
            created["position"].as_i64(),
            "query($id: ID!) { customer(id: $id) { email } }",
            json!({"id": user_id}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["customer"]["email"], "alice@example.com",
        "{body}"
    );
    // Another provider user may not act for Alice (whom they cannot see).
    let mallory = sign(&rsa, &idp.claims("kc-mallory", &[]));
    let order = json!({"customer_id": user_id, "currency": "EUR"});
    let (status, _) = server.post("/v1/orders", Some(&mallory), order).await;
    assert_eq!(status, 404);
    // Roles come from the configured claim and mapping (ES256 here).
    let admin = sign(&ec, &idp.claims("kc-ops", &["shop-admin"]));
    let (status, _) = server.get_auth("/v1/admin/projections", &admin).await;
    assert_eq!(status, 200);
    let (status, _) = server.get_auth("/v1/admin/projections", &customer).await;
    assert_eq!(status, 403);

    let claims = idp.claims("kc-alice", &["shop-admin"]);
    let now = chrono::Utc::now().timestamp();
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let none = format!("{header}.{}.", b64(claims.to_string().as_bytes()));
    assert_refused(&server, &none, "alg none").await;
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some(rsa.kid.clone());
    let forged = jsonwebtoken::encode(
        &confused,
        &claims,
        &EncodingKey::from_secret(&rsa.public_der),
    )
    .expect("forge");
    assert_refused(&server, &forged, "HS256 signed with the RSA public key").await;
    let wrong_iss = with(&claims, json!({"iss": "https://evil.example/realms/shop"}));
    assert_refused(&server, &sign(&rsa, &wrong_iss), "wrong iss").await;
    let wrong_aud = with(&claims, json!({"aud": "another-app"}));
    assert_refused(&server, &sign(&rsa, &wrong_aud), "wrong aud").await;
    let no_aud = with(&claims, json!({"aud": null}));
    assert_refused(&server, &sign(&rsa, &no_aud), "no aud").await;
    let expired = with(&claims, json!({"exp": now - 600}));
    assert_refused(&server, &sign(&rsa, &expired), "expired").await;
    let early = with(&claims, json!({"nbf": now + 600}));
    assert_refused(&server, &sign(&rsa, &early), "not yet valid").await;
    let stranger = rsa_key("never-published");
    assert_refused(&server, &sign(&stranger, &claims), "unknown kid").await;
    // A published key of another type than the token's algorithm.
    let mut mismatched = Header::new(Algorithm::RS256);
    mismatched.kid = Some(ec.kid.clone());
    let token = jsonwebtoken::encode(&mismatched, &claims, &rsa.encoding).expect("sign");
    assert_refused(&server, &token, "a JWKS key of the wrong type").await;
    let huge = sign(&rsa, &with(&claims, json!({"pad": "x".repeat(100_000)})));
    assert_refused(&server, &huge, "a 100 KB token").await;
    assert_refused(&server, "garbage", "garbage").await;
    assert_refused(&server, "a.b.c", "three garbage parts").await;
    // The platform's own tokens still work beside the provider's.
    let local = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let (status, _) = server.get_auth("/v1/admin/projections", &local).await;
    assert_eq!(status, 200);

    // Keys rotate without a restart: a new kid triggers one refetch.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let rotated = rsa_key("rsa-2");
    idp.publish(&rotated);
    let admin = sign(&rotated, &idp.claims("kc-ops", &["shop-admin"]));
    let (status, body) = server.get_auth("/v1/admin/projections", &admin).await;
    assert_eq!(status, 200, "{body}");
    // A flood of random kids does not hammer the provider.
    let before = idp.jwks_hits.load(Ordering::SeqCst);
    for i in 0..30 {
        let flood = sign(&rsa_key_fast(&stranger, i), &claims);
        let (status, _) = server.get_auth("/v1/admin/projections", &flood).await;
        assert_eq!(status, 401);
    }
    let fetched = idp.jwks_hits.load(Ordering::SeqCst) - before;
    assert!(
        fetched <= 2,
        "30 unknown kids caused {fetched} JWKS fetches"
    );

    // A key the provider withdraws stops working at the next fetch (here
    // caused by an unknown kid once the refetch interval has passed).
    idp.jwks
        .lock()
        .expect("jwks")
        .retain(|k| k["kid"] != "rsa-1");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, _) = server
        .get_auth(
            "/v1/admin/projections",
            &sign(&rsa_key_fast(&stranger, 99), &claims),
        )
        .await;
    assert_eq!(status, 401);
    assert_refused(&server, &customer, "a withdrawn key").await;

    // The provider goes away: cached keys keep verifying.
    idp.up.store(false, Ordering::SeqCst);
    let (status, _) = server.get_auth("/v1/admin/projections", &admin).await;
    assert_eq!(status, 200);
    let (status, _) = server.get("/readyz").await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// `stranger`'s key under another kid (no new RSA key per request).
fn rsa_key_fast(stranger: &Key, i: usize) -> Key {
    Key {
        kid: format!("random-{i}"),
        alg: stranger.alg,
        encoding: stranger.encoding.clone(),
        jwk: Value::Null,
        public_der: Vec::new(),
    }
}

#[tokio::test]
async fn a_provider_down_at_start_makes_the_service_unready_until_it_answers() {
    let rsa = rsa_key("rsa-1");
    let idp = Idp::start(&[&rsa]).await;
    idp.up.store(false, Ordering::SeqCst);
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_server(data.path(), &idp.issuer()).await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("identity provider")),
        "{body}"
    );
    let token = sign(&rsa, &idp.claims("kc-bob", &[]));
    let body = json!({"email": "bob@example.com", "name": "Bob"});
    let (status, problem) = server.post("/v1/users", Some(&token), body.clone()).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:shopstream:problem:authentication_unavailable"
    );
    let (_, gql) = server
        .graphql(Some(&token), None, "{ __typename }", Value::Null)
        .await;
    assert_eq!(
        gql["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{gql}"
    );
    // Nothing was appended while the keys were unknown.
    let admin = run_cli(data.path(), &["token", "--sub", "ops", "--role", "admin"]);
    let (_, page) = server
        .graphql(
            Some(&admin),
            None,
            "{ customers(first: 5) { nodes { email } } }",
            Value::Null,
        )
        .await;
    assert_eq!(page["data"]["customers"]["nodes"], json!([]), "{page}");

    // The provider comes up: the service becomes ready and the token works.
    idp.up.store(true, Ordering::SeqCst);
    let mut ready = false;
    for _ in 0..100 {
        if server.get("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(ready, "the service never became ready");
    let (status, problem) = server.post("/v1/users", Some(&token), body).await;
    assert_eq!(status, 201, "{problem}");
    server.stop().await;
}

/// The console signs in at the provider: authorization code with PKCE
/// (S256), the state checked, the token endpoint refusing a wrong
/// verifier; the provider's admin then uses the console like a pasted token.
#[tokio::test]
async fn the_console_signs_in_at_the_identity_provider() {
    let key = rsa_key("console-key");
    let idp = Idp::start(&[&key]).await;
    let data = tempfile::tempdir().expect("tempdir");
    let issuer = idp.issuer();
    let server = Server::start_bin(
        BIN,
        &[
            "serve",
            "--oidc-issuer",
            &issuer,
            "--jwt-audience",
            AUDIENCE,
            "--roles-claim",
            "realm_access.roles",
            "--role-mapping",
            "shop-admin=admin",
            "--console-client-id",
            CONSOLE_CLIENT,
        ],
        data.path(),
        None,
    )
    .await;
    *idp.issue.lock().expect("token") =
        Some(sign(&key, &idp.claims("console-operator", &["shop-admin"])));
    let browser = crate::webdriver::Browser::start().await;
    browser.goto(&format!("{}/console", server.base())).await;
    browser
        .wait_for("#provider:not([hidden])")
        .await
        .click()
        .await
        .expect("sign in at the provider");
    browser
        .until(
            "signed in as the provider's admin",
            "const w = document.getElementById('who-text'); return !!w && w.textContent === 'admin · console-operator';",
            vec![],
        )
        .await;
    assert_eq!(
        idp.exchanges.load(Ordering::SeqCst),
        1,
        "one code, exchanged with its verifier"
    );
    let url = browser.client.current_url().await.expect("url");
    assert!(
        url.query().is_none(),
        "the code is gone from the address bar: {url}"
    );
    browser.wait_for("[data-testid=revenue-total]").await;
    let errors = browser.errors().await;
    assert!(errors.is_empty(), "{errors:#?}");
    // A return this tab did not start (another state) signs nobody in.
    browser
        .wait_for("#signout")
        .await
        .click()
        .await
        .expect("sign out");
    browser
        .goto(&format!(
            "{}/console/?code=forged&state=forged",
            server.base()
        ))
        .await;
    let refused = browser.text("main .error").await;
    assert!(refused.contains("state mismatch"), "{refused}");
    assert_eq!(idp.exchanges.load(Ordering::SeqCst), 1);
    browser.close().await;
    server.stop().await;
}
