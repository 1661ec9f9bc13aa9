// Customers and orders: find a customer by e-mail prefix (admin), their
// orders, an order's timeline, and its whole event stream — the order's
// and its payments', in log order, with the causation chain (command →
// saga → payment). A customer sees only their own.

import { gql, rest } from "./api.js";
import { el, show, m, count, when, errorBox, table } from "./format.js";

const CUSTOMER = `id email name status registeredAt orderCount lastOrderAt
  lifetimeSpend { amountMinor currency }
  orders(first: 50) { edges { node { id status total { amountMinor currency } itemCount createdAt updatedAt } } }`;

function ordersTable(orders) {
  return table([
    ["Order", (o) => el("a", { href: "#/orders/" + o.id }, o.id.slice(0, 8) + "…")],
    ["Status", (o) => o.status],
    ["Items", (o) => o.itemCount],
    ["Total", (o) => m(o.total)],
    ["Created", (o) => when(o.createdAt)],
    ["Updated", (o) => when(o.updatedAt)],
  ], orders, { "data-testid": "orders", class: "wide" });
}

function customerView(c) {
  return [
    el("h1", { "data-testid": "customer-name" }, c.name),
    el("dl", { class: "facts" },
      el("dt", {}, "E-mail"), el("dd", { "data-testid": "customer-email" }, c.email),
      el("dt", {}, "Status"), el("dd", {}, c.status),
      el("dt", {}, "Registered"), el("dd", {}, when(c.registeredAt)),
      el("dt", {}, "Orders"), el("dd", {}, count(c.orderCount)),
      el("dt", {}, "Lifetime spend"), el("dd", {}, c.lifetimeSpend.map(m).join(", ") || "–")),
    el("h2", {}, "Orders"),
    ordersTable(c.orders.edges.map((e) => e.node)),
  ];
}

export async function customer(id) {
  show(el("p", { class: "muted" }, "Loading…"));
  try {
    const data = await gql(`query($id: ID!) { customer(id: $id) { ${CUSTOMER} } }`, { id });
    show(...customerView(data.customer));
  } catch (e) {
    show(el("h1", {}, "Customer"), errorBox(e));
  }
}

export async function me() {
  show(el("p", { class: "muted" }, "Loading…"));
  try {
    const data = await gql(`{ me { ${CUSTOMER} } }`);
    show(...customerView(data.me));
  } catch (e) {
    show(el("h1", {}, "My orders"), errorBox(e));
  }
}

export async function customers() {
  const input = el("input", { type: "search", name: "prefix", placeholder: "e-mail starts with…", "aria-label": "E-mail prefix" });
  const results = el("div", { "data-testid": "customer-results" });
  const search = async () => {
    try {
      const data = await gql(`query($p: String) { customers(first: 50, filter: { emailPrefix: $p }, orderBy: EMAIL_ASC) {
        edges { node { id email name status orderCount registeredAt } } } }`, { p: input.value || null });
      const rows = data.customers.edges.map((e) => e.node);
      results.replaceChildren(rows.length ? table([
        ["E-mail", (c) => el("a", { href: "#/customers/" + c.id }, c.email)],
        ["Name", (c) => c.name],
        ["Status", (c) => c.status],
        ["Orders", (c) => count(c.orderCount)],
        ["Registered", (c) => when(c.registeredAt)],
      ], rows, { class: "wide" }) : el("p", { class: "muted" }, "No customer's e-mail starts with that."));
    } catch (e) {
      results.replaceChildren(errorBox(e));
    }
  };
  show(el("h1", {}, "Customers"),
    el("form", { class: "controls", role: "search", onsubmit: (e) => { e.preventDefault(); search(); } },
      input, el("button", { type: "submit" }, "Find")),
    results);
  input.focus();
  await search();
}

/** The order's stream and its payments' streams, merged in log order. */
async function stories(order) {
  const ids = new Set([order.payment.paymentId, ...order.payment.failures.map((f) => f.paymentId)].filter(Boolean));
  const calls = [rest("GET", "/v1/orders/" + encodeURIComponent(order.id) + "/events"),
    ...[...ids].map((p) => rest("GET", "/v1/payments/" + encodeURIComponent(p) + "/events"))];
  const answers = await Promise.all(calls);
  const refused = answers.find((a) => a.status !== 200);
  if (refused) return { refused };
  const events = answers.flatMap((a) => a.body.events.map((e) => ({ ...e, aggregate: a.body.aggregate_type })));
  events.sort((a, b) => a.position - b.position);
  return { events };
}

function streamView(events) {
  const byId = new Map(events.map((e) => [e.event_id, e]));
  const cause = (e) => {
    const c = e.metadata && e.metadata.causation_id;
    if (!c) return e.metadata && e.metadata.actor ? "command by " + e.metadata.actor : "command";
    const parent = byId.get(c);
    return parent ? "← " + parent.event_type + " @" + parent.position : "← event " + String(c).slice(0, 8);
  };
  return table([
    ["Position", (e) => e.position],
    ["Stream", (e) => e.aggregate + " #" + e.sequence],
    ["Event", (e) => e.event_type + " v" + e.event_version],
    ["Caused by", cause],
    ["Correlation", (e) => String((e.metadata && e.metadata.correlation_id) || "–").slice(0, 12)],
    ["Recorded", (e) => when(e.recorded_at)],
    ["Payload", (e) => el("details", {}, el("summary", {}, "data"), el("pre", {}, JSON.stringify(e.payload, null, 2)))],
  ], events, { "data-testid": "event-stream", class: "wide" });
}

export async function order(id, role) {
  show(el("p", { class: "muted" }, "Loading…"));
  let o;
  try {
    const data = await gql(`query($id: ID!) { order(id: $id) { id customerId status total { amountMinor currency }
      itemCount createdAt updatedAt carrier trackingNumber cancelReason
      items { sku name quantity unitPrice { amountMinor currency } lineTotal { amountMinor currency } }
      history { status at }
      payment { status paymentId authorizedMinor capturedMinor refundedMinor failures { paymentId reason at } } } }`, { id });
    o = data.order;
  } catch (e) {
    show(el("h1", {}, "Order"), errorBox(e));
    return;
  }
  const streamBox = el("div", {}, el("p", { class: "muted" }, "Loading the event stream…"));
  show(
    el("h1", {}, "Order ", el("code", {}, o.id)),
    el("dl", { class: "facts" },
      el("dt", {}, "Customer"), el("dd", {}, el("a", { href: "#/customers/" + o.customerId }, o.customerId)),
      el("dt", {}, "Status"), el("dd", { "data-testid": "order-status" }, o.status),
      el("dt", {}, "Total"), el("dd", {}, m(o.total)),
      el("dt", {}, "Payment"), el("dd", {}, o.payment.status || "–"),
      o.trackingNumber ? [el("dt", {}, "Shipment"), el("dd", {}, o.carrier + " " + o.trackingNumber)] : null,
      o.cancelReason ? [el("dt", {}, "Cancelled"), el("dd", {}, o.cancelReason)] : null),
    el("h2", {}, "Items"),
    table([["SKU", (i) => i.sku], ["Name", (i) => i.name], ["Qty", (i) => i.quantity],
      ["Unit", (i) => m(i.unitPrice)], ["Line", (i) => m(i.lineTotal)]], o.items),
    el("h2", {}, "Timeline"),
    el("ol", { class: "timeline", "data-testid": "timeline" },
      o.history.map((h) => el("li", {}, el("strong", {}, h.status), " ", when(h.at)))),
    el("h2", {}, "Event stream"),
    streamBox);
  if (role !== "admin") {
    streamBox.replaceChildren(el("p", { class: "muted" }, "The event stream is shown to admins."));
    return;
  }
  const s = await stories(o);
  if (s.refused) {
    const detail = s.refused.body && s.refused.body.detail;
    streamBox.replaceChildren(el("p", { class: "muted" }, "The event stream is for admins" + (detail ? " (" + detail + ")" : "") + "."));
  } else {
    streamBox.replaceChildren(streamView(s.events));
  }
}
