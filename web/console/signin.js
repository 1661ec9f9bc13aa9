// Signing in at the identity provider: the OAuth 2.0 authorization-code
// flow with PKCE (RFC 7636, S256) as a public client, when the server is
// started with --oidc-issuer and --console-client-id. The code verifier
// and state live in this tab's sessionStorage until the provider sends the
// browser back to /console/?code=…&state=…; the access token it returns
// is then used like a pasted one.

const PENDING = "shopstream.pkce";

function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random() {
  return b64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function discovery(issuer) {
  const r = await fetch(issuer + "/.well-known/openid-configuration");
  if (!r.ok) throw new Error("the identity provider's discovery answered " + r.status);
  return r.json();
}

function redirectUri() {
  return location.origin + "/console/";
}

/** What the server says the console signs in with (or null). */
export async function provider() {
  try {
    const r = await fetch("/console/config.json");
    return r.ok ? (await r.json()).signIn : null;
  } catch (e) {
    return null;
  }
}

/** Sends the browser to the provider's authorization endpoint. */
export async function start(signIn) {
  const d = await discovery(signIn.issuer);
  const verifier = random();
  const state = random();
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, back: location.hash || "#/" }));
  const q = new URLSearchParams({
    response_type: "code",
    client_id: signIn.clientId,
    redirect_uri: redirectUri(),
    scope: "openid",
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(d.authorization_endpoint + "?" + q.toString());
}

/**
 * On the way back from the provider: exchanges the code for an access
 * token. Resolves to `{ token, back }`, or null when this is no return
 * from the provider; rejects when the return is not the one this tab
 * started (state) or the provider refuses.
 */
export async function finish(signIn) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", "/console/" + ((pending && pending.back) || "#/"));
  if (params.has("error")) throw new Error("the identity provider refused: " + params.get("error"));
  if (!pending || params.get("state") !== pending.state) throw new Error("this sign-in was not started here (state mismatch)");
  if (!signIn) throw new Error("this server has no identity provider for the console");
  const d = await discovery(signIn.issuer);
  const r = await fetch(d.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: redirectUri(),
      client_id: signIn.clientId,
      code_verifier: pending.verifier,
    }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok || !body.access_token) {
    throw new Error("the identity provider did not issue a token: " + (body.error_description || body.error || r.status));
  }
  return { token: body.access_token, back: pending.back };
}
