// The console's shell: sign-in (a pasted bearer token, kept for this tab
// only), the navigation the caller's role may use, and the hash routes.

import { gql, token, signIn, signOut } from "./api.js";
import { el, show, errorBox } from "./format.js";
import { dashboard } from "./dashboard.js";
import { operations, leave as leaveOperations } from "./operations.js";
import { customers, customer, order, me } from "./customers.js";
import { live, leave as leaveLive } from "./live.js";
import * as provider from "./signin.js";

const SECTIONS = {
  admin: [["#/dashboard", "Analytics"], ["#/operations", "Operations"], ["#/customers", "Customers"], ["#/live", "Live"]],
  analyst: [["#/dashboard", "Analytics"], ["#/customers", "Customers"], ["#/live", "Live"]],
  service: [["#/live", "Live"]],
  customer: [["#/me", "My orders"], ["#/live", "Live"]],
};

let viewer = null;
let signInError = null;

async function who() {
  if (!token()) return null;
  try {
    return (await gql("{ viewer { subject role userId } }")).viewer;
  } catch (e) {
    return { error: e };
  }
}

function nav() {
  const links = viewer && !viewer.error ? SECTIONS[viewer.role] || [] : [];
  const here = location.hash.split("/").slice(0, 2).join("/");
  document.getElementById("nav").replaceChildren(...links.map(([href, text]) =>
    el("a", { href, "aria-current": href === here ? "page" : null }, text)));
  const signedIn = viewer && !viewer.error;
  document.getElementById("signin").hidden = !!signedIn;
  document.getElementById("who").hidden = !signedIn;
  if (signedIn) document.getElementById("who-text").textContent = viewer.role + " · " + viewer.subject;
}

function welcome() {
  show(el("h1", {}, "shopstream console"),
    viewer && viewer.error ? errorBox(viewer.error) : null,
    signInError ? errorBox(signInError) : null,
    el("p", {}, "Sign in with a bearer token: an admin or analyst token opens analytics, operations and customers; a customer token opens that customer's own orders."),
    el("p", { class: "muted" }, "Development: ", el("code", {}, "shopstream token --role admin"),
      " prints one. Also here: ", el("a", { href: "/docs" }, "REST reference"), " · ",
      el("a", { href: "/graphql" }, "GraphiQL"), "."));
}

async function route() {
  leaveOperations();
  leaveLive();
  nav();
  const [, section, id] = location.hash.split("/");
  if (!viewer || viewer.error) return welcome();
  const home = viewer.role === "customer" ? "me" : viewer.role === "service" ? "live" : "dashboard";
  switch (section || home) {
    case "dashboard": return dashboard();
    case "operations": return operations();
    case "customers": return id ? customer(decodeURIComponent(id)) : customers();
    case "orders": return order(decodeURIComponent(id || ""), viewer.role);
    case "me": return me();
    case "live": return live();
    default: location.hash = "#/" + home;
  }
}

document.getElementById("signin").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = document.getElementById("token");
  if (!input.value.trim()) return;
  signIn(input.value);
  input.value = "";
  viewer = await who();
  if (viewer && viewer.error) signOut();
  route();
});

document.getElementById("signout").addEventListener("click", () => {
  signOut();
  viewer = null;
  location.hash = "#/";
  route();
});

window.addEventListener("hashchange", () => {
  route();
  document.getElementById("view").focus({ preventScroll: true });
});

async function boot() {
  const idp = await provider.provider();
  if (idp) {
    const button = document.getElementById("provider");
    button.hidden = false;
    button.addEventListener("click", () => provider.start(idp).catch((e) => {
      signInError = e;
      route();
    }));
  }
  try {
    const back = await provider.finish(idp);
    if (back) signIn(back.token);
  } catch (e) {
    signInError = e;
  }
  viewer = await who();
  route();
}

boot();
