// The console's only way to the platform: its public GraphQL API (queries
// and the subscription WebSocket) and the admin REST endpoints, with the
// signed-in bearer token. Nothing here is privileged: the server decides.

const KEY = "shopstream.token";

export function token() {
  return sessionStorage.getItem(KEY);
}

export function signIn(t) {
  sessionStorage.setItem(KEY, t.trim());
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

/** A GraphQL error, with its `extensions.code`. */
export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code || "ERROR";
  }
}

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const t = token();
  if (t) h.Authorization = "Bearer " + t;
  return h;
}

/** Runs a GraphQL query; resolves to `data`, rejects with the first error. */
export async function gql(query, variables = {}) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { ...headers(true), Accept: "application/graphql-response+json" },
    body: JSON.stringify({ query, variables }),
  });
  let body;
  try {
    body = await response.json();
  } catch (e) {
    throw new ApiError("the GraphQL endpoint answered " + response.status, "HTTP_" + response.status);
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    throw new ApiError(first.message, first.extensions && first.extensions.code);
  }
  return body.data;
}

/** A REST call; resolves to `{ status, body }` (problem+json bodies included). */
export async function rest(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (e) {
    parsed = { detail: text };
  }
  return { status: response.status, body: parsed };
}

/**
 * Subscribes over graphql-transport-ws; `onData(data)` per push,
 * `onError(message)` once. Returns a function that closes it.
 */
export function subscribe(query, variables, onData, onError) {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/graphql/ws", "graphql-transport-ws");
  let closed = false;
  ws.onopen = () => {
    const payload = token() ? { Authorization: "Bearer " + token() } : {};
    ws.send(JSON.stringify({ type: "connection_init", payload }));
  };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "connection_ack") {
      ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
    } else if (msg.type === "next") {
      if (msg.payload.errors && msg.payload.errors.length) onError(msg.payload.errors[0].message);
      else onData(msg.payload.data);
    } else if (msg.type === "error") {
      onError(msg.payload && msg.payload[0] ? msg.payload[0].message : "subscription refused");
    } else if (msg.type === "ping") {
      ws.send(JSON.stringify({ type: "pong" }));
    }
  };
  ws.onclose = (e) => {
    if (!closed) onError("the live connection closed" + (e.reason ? ": " + e.reason : ""));
  };
  return () => {
    closed = true;
    ws.close();
  };
}
