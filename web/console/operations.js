// Operations (admin): every projection's version, generation, state,
// source, position, head and lag, refreshed live; rebuilds started here,
// with their progress and the diff summary compared before the swap; a
// poison event's position and error.

import { gql, rest } from "./api.js";
import { el, show, count, when, errorBox, table } from "./format.js";

const QUERY = `{ projections { name version codeVersion generation state source position head
  lagEvents lagSeconds eventsApplied error errorPosition rebuilding { generation position } } }`;

let timer = null;

export function leave() {
  if (timer) clearInterval(timer);
  timer = null;
}

function version(p) {
  if (p.version === null) return "–";
  return p.version === p.codeVersion ? String(p.version) : p.version + " → " + p.codeVersion;
}

function projectionsTable(list, onRebuild, running) {
  return table([
    ["Projection", (p) => p.name],
    ["Version", version],
    ["Generation", (p) => el("span", { "data-testid": "gen-" + p.name }, p.generation ?? "–")],
    ["State", (p) => el("span", { class: "state " + p.state }, p.state)],
    ["Source", (p) => p.source],
    ["Position", (p) => count(p.position)],
    ["Head", (p) => el("span", { "data-testid": "head-" + p.name }, count(p.head))],
    ["Lag", (p) => el("span", { "data-testid": "lag-" + p.name }, count(p.lagEvents))],
    ["Lag (s)", (p) => p.lagSeconds.toFixed(1)],
    ["", (p) => el("button", { type: "button", "data-testid": "rebuild-" + p.name, disabled: running.has(p.name),
      onclick: () => onRebuild(p.name) }, running.has(p.name) ? "Rebuilding…" : "Rebuild")],
  ], list, { "data-testid": "projections", class: "wide" });
}

function poison(list) {
  const failed = list.filter((p) => p.error);
  return failed.map((p) => el("p", { class: "error", role: "alert", "data-testid": "poison-" + p.name },
    p.name + " stopped at position " + p.errorPosition + ": " + p.error));
}

function relayView(r) {
  if (!r || !r.relay) return null;
  const s = r.relay;
  return el("section", { class: "card", "data-testid": "relay" },
    el("h2", {}, "Relay (store → Kafka)"),
    el("dl", { class: "facts" },
      el("dt", {}, "Role"), el("dd", { class: "state " + (s.role === "active" ? "live" : "") }, s.role),
      el("dt", {}, "Kafka"), el("dd", { class: s.kafka_reachable ? "state live" : "error" }, s.kafka_reachable ? "reachable" : "unreachable"),
      el("dt", {}, "Published up to"), el("dd", {}, count(s.checkpoint)),
      el("dt", {}, "Store head"), el("dd", {}, count(r.head)),
      el("dt", {}, "Lag"), el("dd", { "data-testid": "relay-lag" }, count(r.lag_events)),
      el("dt", {}, "In flight"), el("dd", {}, count(s.in_flight)),
      el("dt", {}, "Published (this process)"), el("dd", {}, count(s.published)),
      s.last_error ? [el("dt", {}, "Last error"), el("dd", { class: "error" }, s.last_error)] : null));
}

function jobView(j) {
  const pct = j.head > 0 ? Math.min(100, (100 * j.position) / j.head) : (j.state === "running" ? 0 : 100);
  return el("li", { class: "job " + j.state, "data-testid": "job-" + j.id },
    el("strong", {}, j.projection), " — ",
    el("span", { "data-testid": "job-state-" + j.id }, j.state),
    j.generation ? " (generation " + j.generation + " live" + (j.previous_generation ? ", was " + j.previous_generation : "") + ")" : "",
    el("progress", { max: 100, value: pct.toFixed(0), "aria-label": "progress of " + j.projection }),
    el("span", { class: "muted" }, count(j.events) + " events · " + count(Math.round(j.events_per_second)) +
      " events/s" + (j.state === "running" && j.eta_seconds !== null ? " · ETA " + j.eta_seconds + " s" : "") +
      " · started " + when(j.started_at)),
    j.error ? el("p", { class: "error" }, j.error) : null,
    j.diff.length ? table([
      ["Table", (d) => d.table],
      ["Live rows", (d) => count(d.live_rows)],
      ["Rebuilt rows", (d) => count(d.rebuilt_rows)],
      ["", (d) => d.live_rows === d.rebuilt_rows && d.live_checksum === d.rebuilt_checksum ? "same" : "differs"],
    ], j.diff, { class: "diff" }) : null);
}

export async function operations() {
  leave();
  const status = el("div", { "data-testid": "operations" }, el("p", { class: "muted" }, "Loading…"));
  const jobs = el("ul", { class: "jobs", "data-testid": "jobs" });
  const verify = el("input", { type: "checkbox", id: "verify" });
  const notice = el("p", { role: "status" });
  show(el("h1", {}, "Operations"), status,
    el("h2", {}, "Rebuilds"),
    el("p", {}, el("label", { for: "verify" }, verify, " Refuse the swap when a same-version rebuild differs (verify)")),
    notice, jobs);
  let running = new Set();
  const onRebuild = async (name) => {
    const r = await rest("POST", "/v1/admin/projections/" + encodeURIComponent(name) + "/rebuild", { verify: verify.checked });
    notice.textContent = r.status === 202 ? "Rebuild of " + name + " started." :
      (r.body && r.body.detail) || ("The rebuild could not start (" + r.status + ").");
    refresh();
  };
  const refresh = async () => {
    try {
      const [data, list, relay] = await Promise.all([gql(QUERY), rest("GET", "/v1/admin/rebuilds"),
        rest("GET", "/v1/admin/relay")]);
      const rebuilds = list.status === 200 ? list.body.rebuilds : [];
      running = new Set(rebuilds.filter((j) => j.state === "running").map((j) => j.projection));
      status.replaceChildren(projectionsTable(data.projections, onRebuild, running), ...poison(data.projections),
        relayView(relay.status === 200 ? relay.body : null) || "",
        el("p", { class: "muted" }, "Refreshed " + when(new Date().toISOString()) +
          (list.status === 200 ? "" : " · rebuilds are started on the command service")));
      jobs.replaceChildren(...rebuilds.map(jobView));
    } catch (e) {
      status.replaceChildren(errorBox(e));
    }
  };
  await refresh();
  timer = setInterval(refresh, 1500);
}
