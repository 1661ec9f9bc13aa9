// Charts as SVG drawn here (no chart library to vendor), each with a text
// equivalent: an aria-label carrying every value, and a table toggle.

import { el, table } from "./format.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/**
 * A bar chart of `points` ([{ label, value, text, axis }]): `text` is the
 * value as shown (formatted money, a count), `axis` an optional shorter
 * label under a column. `title` names it.
 */
export function bars(title, points, { horizontal = false, testid } = {}) {
  const description = title + ": " + (points.length
    ? points.map((p) => p.label + " " + p.text).join("; ")
    : "no data");
  const figure = el("figure", { class: "chart", "data-testid": testid });
  const caption = el("figcaption", {}, title);
  const toggle = el("button", { type: "button", class: "link", "aria-pressed": "false" }, "Table");
  caption.append(" ", toggle);
  const max = Math.max(1, ...points.map((p) => Math.abs(p.value)));
  const width = 600;
  const row = 22;
  let picture;
  if (horizontal) {
    const height = Math.max(row, points.length * row);
    picture = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": description, class: "hbars" });
    points.forEach((p, i) => {
      const w = Math.max(1, (Math.abs(p.value) / max) * (width - 260));
      picture.append(
        svg("text", { x: 0, y: i * row + 15, class: "label" }, p.label.length > 22 ? p.label.slice(0, 21) + "…" : p.label),
        svg("rect", { x: 170, y: i * row + 4, width: w, height: row - 8, class: "bar" }),
        svg("text", { x: 176 + w, y: i * row + 15, class: "value" }, p.text));
    });
  } else {
    const height = 200;
    const n = Math.max(1, points.length);
    const slot = width / n;
    picture = svg("svg", { viewBox: `0 0 ${width} ${height + 20}`, role: "img", "aria-label": description, class: "vbars" });
    points.forEach((p, i) => {
      const h = Math.max(1, (Math.abs(p.value) / max) * height);
      const bar = svg("rect", { x: i * slot + slot * 0.1, y: height - h, width: Math.max(1, slot * 0.8), height: h, class: p.value < 0 ? "bar negative" : "bar" });
      bar.append(svg("title", {}, p.label + ": " + p.text));
      picture.append(bar);
      if (n <= 14 || i % Math.ceil(n / 12) === 0) {
        picture.append(svg("text", { x: i * slot + slot / 2, y: height + 15, class: "axis", "text-anchor": "middle" }, p.axis || p.label));
      }
    });
  }
  const data = table([["", (p) => p.label], ["Value", (p) => p.text]], points, { class: "data", hidden: true });
  toggle.addEventListener("click", () => {
    const showTable = data.hidden;
    data.hidden = !showTable;
    picture.style.display = showTable ? "none" : "";
    toggle.setAttribute("aria-pressed", String(showTable));
    toggle.textContent = showTable ? "Chart" : "Table";
  });
  figure.append(caption, points.length ? picture : el("p", { class: "muted" }, "No data in this period."), data);
  return figure;
}
