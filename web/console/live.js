// Live: order updates as they happen, through the GraphQL subscription
// `orderFeed` (customers: their own orders only).

import { subscribe } from "./api.js";
import { el, show, m, when } from "./format.js";

const QUERY = `subscription { orderFeed(recent: 20) { id customerId status total { amountMinor currency } itemCount updatedAt } }`;
const KEPT = 200;

let close = null;

export function leave() {
  if (close) close();
  close = null;
}

export function live() {
  leave();
  const list = el("ol", { class: "feed", reversed: true, "data-testid": "feed" });
  const state = el("p", { role: "status", class: "muted" }, "Connecting…");
  show(el("h1", {}, "Live orders"), state, list);
  close = subscribe(QUERY, {}, (data) => {
    const o = data.orderFeed;
    state.textContent = "Live · last update " + when(o.updatedAt);
    const item = el("li", { "data-order": o.id },
      el("a", { href: "#/orders/" + o.id }, o.id.slice(0, 8) + "…"), " ",
      el("strong", { class: "state " + o.status }, o.status), " ",
      m(o.total), " · ", o.itemCount + " items · ", when(o.updatedAt));
    list.prepend(item);
    while (list.children.length > KEPT) list.lastChild.remove();
  }, (message) => {
    state.textContent = message;
    state.className = "error";
  });
}
