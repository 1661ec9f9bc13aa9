// Formatting and DOM helpers. Text always goes in as text (never as HTML),
// so nothing a customer typed can run in an operator's browser.

const formats = new Map();

function moneyFormat(currency) {
  if (!formats.has(currency)) {
    let f;
    try {
      f = new Intl.NumberFormat("en", { style: "currency", currency });
    } catch (e) {
      f = null;
    }
    formats.set(currency, f);
  }
  return formats.get(currency);
}

/** Minor units → `€1,234.56` (per the currency's own number of decimals). */
export function money(minor, currency) {
  const f = moneyFormat(currency);
  if (!f) return minor + " " + currency;
  const digits = f.resolvedOptions().maximumFractionDigits;
  return f.format(Number(minor) / Math.pow(10, digits));
}

/** A Money object ({ amountMinor, currency }). */
export function m(value) {
  return value ? money(value.amountMinor, value.currency) : "–";
}

export function count(n) {
  return new Intl.NumberFormat("en").format(n);
}

export function percent(x) {
  return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + " %";
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function isoDay(d) {
  return d.toISOString().slice(0, 10);
}

/** `el("td", { class: "x", "data-testid": "y" }, "text", child)`. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** A table: `columns` = [[heading, row => cell]]. */
export function table(columns, rows, attrs = {}) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, columns.map(([h]) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, columns.map(([, f]) => el("td", {}, f(r)))))));
}

/** Replaces the view's content; moves focus there for keyboard users. */
export function show(...children) {
  const view = document.getElementById("view");
  view.replaceChildren(...children);
}

export function errorBox(e) {
  return el("p", { class: "error", role: "alert" }, (e.code ? e.code + ": " : "") + e.message);
}
