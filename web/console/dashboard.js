// The analytics dashboard (admin, analyst): revenue over time, top
// products, the funnel, payment outcomes, average order value and new
// customers for a date range, in one currency.

import { gql } from "./api.js";
import { bars } from "./charts.js";
import { el, show, money, m, count, percent, isoDay, errorBox, table } from "./format.js";

const QUERY = `query Dashboard($from: NaiveDate!, $to: NaiveDate!, $g: Granularity!, $c: String!, $by: ProductRanking!) {
  analytics {
    currencies
    revenue(from: $from, to: $to, granularity: $g, currency: $c) { bucket amount { amountMinor currency } }
    topProducts(from: $from, to: $to, by: $by, limit: 10) { sku name quantity revenue { amountMinor currency } }
    funnel(from: $from, to: $to) { created placed paid shipped delivered cancelled }
    paymentOutcomes(from: $from, to: $to) {
      initiated authorized captured failed refunded successRate failuresByReason { reason count }
    }
    averageOrderValue(from: $from, to: $to, currency: $c) { amountMinor currency }
    newCustomers(from: $from, to: $to)
  }
}`;

function daysAgo(n) {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() - n);
  return isoDay(d);
}

const state = { from: daysAgo(364), to: daysAgo(0), g: "MONTH", c: "EUR", by: "REVENUE" };

function control(label, input) {
  return el("label", { class: "control" }, el("span", {}, label), input);
}

function select(name, value, options, onchange) {
  const s = el("select", { name, onchange: (e) => onchange(e.target.value) },
    options.map(([v, text]) => el("option", { value: v, selected: v === value }, text)));
  return s;
}

function controls(currencies, rerun) {
  const set = (k) => (v) => { state[k] = v; rerun(); };
  const date = (k) => el("input", { type: "date", name: k, value: state[k], onchange: (e) => set(k)(e.target.value) });
  const preset = (text, days) => el("button", { type: "button", onclick: () => {
    state.from = daysAgo(days); state.to = daysAgo(0); rerun();
  } }, text);
  const codes = currencies.length ? currencies : [state.c];
  return el("form", { class: "controls", "aria-label": "Dashboard filters", onsubmit: (e) => e.preventDefault() },
    control("From", date("from")),
    control("To", date("to")),
    el("span", { class: "presets" }, preset("30 days", 29), preset("90 days", 89), preset("12 months", 364)),
    control("Bucket", select("granularity", state.g, [["DAY", "Day"], ["WEEK", "Week"], ["MONTH", "Month"]], set("g"))),
    control("Currency", select("currency", state.c, codes.map((c) => [c, c]), set("c"))),
    control("Top products by", select("ranking", state.by, [["REVENUE", "Revenue"], ["QUANTITY", "Quantity"]], set("by"))));
}

function tile(label, value, testid) {
  return el("div", { class: "tile" }, el("span", { class: "tile-label" }, label),
    el("strong", { class: "tile-value", "data-testid": testid }, value));
}

function render(a, rerun) {
  const revenueTotal = a.revenue.reduce((s, b) => s + b.amount.amountMinor, 0);
  const p = a.paymentOutcomes;
  const f = a.funnel;
  const stages = [["Created", f.created], ["Placed", f.placed], ["Paid", f.paid], ["Shipped", f.shipped],
    ["Delivered", f.delivered], ["Cancelled", f.cancelled]];
  show(
    el("h1", {}, "Analytics"),
    controls(a.currencies, rerun),
    el("section", { class: "tiles", "aria-label": "Key figures" },
      tile("Revenue", money(revenueTotal, state.c), "revenue-total"),
      tile("Average order value", m(a.averageOrderValue), "average-order-value"),
      tile("New customers", count(a.newCustomers), "new-customers"),
      tile("Payment success", percent(p.successRate), "payment-success")),
    el("div", { class: "grid" },
      bars("Revenue per " + state.g.toLowerCase() + " (" + state.c + ")",
        a.revenue.map((b) => ({ label: b.bucket, value: b.amount.amountMinor, text: m(b.amount),
          axis: state.g === "MONTH" ? b.bucket.slice(0, 7) : b.bucket.slice(5) })),
        { testid: "revenue-chart" }),
      bars("Top products by " + state.by.toLowerCase(),
        a.topProducts.map((t) => ({ label: t.name + " (" + t.sku + ")",
          value: state.by === "REVENUE" ? t.revenue.amountMinor : t.quantity,
          text: state.by === "REVENUE" ? m(t.revenue) : count(t.quantity) })),
        { horizontal: true, testid: "top-products" }),
      bars("Funnel", stages.map(([label, n]) => ({ label, value: n, text: count(n) })),
        { horizontal: true, testid: "funnel" }),
      el("section", { class: "card", "data-testid": "payments" },
        el("h2", {}, "Payment outcomes"),
        table([["Outcome", (r) => r[0]], ["Count", (r) => count(r[1])]],
          [["Initiated", p.initiated], ["Authorized", p.authorized], ["Captured", p.captured],
            ["Failed", p.failed], ["Refunded", p.refunded]]),
        el("h3", {}, "Failures by reason"),
        p.failuresByReason.length
          ? table([["Reason", (r) => r.reason], ["Count", (r) => count(r.count)]], p.failuresByReason,
            { "data-testid": "failure-reasons" })
          : el("p", { class: "muted" }, "No failed payments."))));
}

export async function dashboard() {
  show(el("h1", {}, "Analytics"), el("p", { class: "muted" }, "Loading…"));
  const rerun = () => dashboard();
  try {
    let data = await gql(QUERY, state);
    const currencies = data.analytics.currencies;
    if (currencies.length && !currencies.includes(state.c)) {
      state.c = currencies[0];
      data = await gql(QUERY, state);
    }
    render(data.analytics, rerun);
  } catch (e) {
    show(el("h1", {}, "Analytics"), controls([], rerun), errorBox(e));
  }
}
