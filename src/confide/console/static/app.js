// The console shell: header (org, user, language), navigation, hash router, sign-in state.
// Pages are modules under pages/: each exports render(ctx, ...params) -> Promise<Element>.

import { Api, ApiError } from "./api.js";
import { currentLang, setLang, t } from "./i18n.js";
import { clearSession, loadSession } from "./keys.js";
import { explain, h } from "./ui.js";

const ROUTES = [
  [/^#\/signin$/, "signin", false],
  [/^#\/catalog$/, "catalog", true],
  [/^#\/dataset\/(.+)$/, "dataset", true],
  [/^#\/applications$/, "applications", true],
  [/^#\/tasks$/, "tasks", true],
  [/^#\/task\/([0-9a-f]{64})$/, "task", true],
  [/^#\/run\/([0-9a-f]{64})$/, "run", true],
  [/^#\/provenance\/([0-9a-f]{64})$/, "provenance", true],
  [/^#\/audit$/, "audit", true],
  [/^#\/block\/(\d+)$/, "block", true],
  [/^#\/tx\/([0-9a-f]{64})$/, "tx", true],
  [/^#\/consortium$/, "consortium", true],
];
const NAV = [
  ["#/catalog", "nav_catalog"],
  ["#/applications", "nav_applications"],
  ["#/tasks", "nav_tasks"],
  ["#/audit", "nav_audit"],
  ["#/consortium", "nav_consortium"],
];

const state = { session: null, api: new Api(null), me: null, nodeOrg: "" };

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** Called by the sign-in page once the key is checked. */
export function signedIn(session, me) {
  state.session = session;
  state.api = new Api(session);
  state.me = me;
  go("#/catalog");
}

async function signOut() {
  await clearSession();
  state.session = null;
  state.me = null;
  state.api = new Api(null);
  go("#/signin");
}

function header() {
  const me = state.me;
  return h(
    "header",
    { class: "top" },
    h("div", { class: "brand" }, h("span", { class: "logo" }, "◆"), " ", t("app")),
    h("div", { class: "node", testid: "node-org" }, t("node_of", { org: state.nodeOrg })),
    h(
      "div",
      { class: "who" },
      me ? h("span", { testid: "whoami" }, t("signed_in_as", { name: me.name, roles: me.roles.map((r) => t(`role_${r}`)).join(", ") })) : null,
      h(
        "button",
        {
          type: "button",
          class: "link",
          testid: "lang-toggle",
          onclick: () => {
            setLang(currentLang() === "zh" ? "en" : "zh");
            route();
          },
        },
        t("lang_other"),
      ),
      me ? h("button", { type: "button", class: "link", testid: "signout", onclick: signOut }, t("sign_out")) : null,
    ),
  );
}

function nav(active) {
  if (!state.me) return null;
  return h(
    "nav",
    { class: "side" },
    NAV.map(([href, key]) =>
      h("a", { href, class: active.startsWith(href) ? "active" : "", testid: `nav-${key.slice(4)}` }, t(key)),
    ),
  );
}

let seq = 0;

async function route() {
  const mine = ++seq;
  const hash = location.hash || "#/catalog";
  let match = null;
  for (const [re, page, needsKey] of ROUTES) {
    const m = re.exec(hash);
    if (m) {
      match = { page, needsKey, params: m.slice(1).map(decodeURIComponent) };
      break;
    }
  }
  if (!match) match = { page: "catalog", needsKey: true, params: [] };
  if (match.needsKey && !state.me) match = { page: "signin", needsKey: false, params: [] };
  document.title = t("app");
  const main = h("main", { id: "main", testid: `page-${match.page}` }, h("p", { class: "muted" }, t("loading")));
  document.body.replaceChildren(header(), h("div", { class: "frame" }, nav(hash), main));
  try {
    const mod = await import(`./pages/${match.page}.js`);
    const el = await mod.render({ api: state.api, me: state.me, nodeOrg: state.nodeOrg, go, signedIn }, ...match.params);
    if (mine === seq) main.replaceChildren(el);
  } catch (exc) {
    if (mine !== seq) return;
    if (exc instanceof ApiError && exc.status === 401) {
      await signOut();
      return;
    }
    main.replaceChildren(h("div", { class: "notice fail", testid: "page-error" }, explain(exc)));
  }
}

async function start() {
  setLang(currentLang());
  try {
    state.nodeOrg = (await new Api(null).call("GET", "/v1/health")).org;
  } catch {
    state.nodeOrg = "?";
  }
  const saved = await loadSession();
  if (saved) {
    state.session = saved;
    state.api = new Api(saved);
    try {
      const m = await state.api.call("GET", `/v1/query/member/${saved.keyId}`);
      state.me = { ...m, keyId: saved.keyId };
    } catch {
      await clearSession();
      state.session = null;
      state.api = new Api(null);
    }
  }
  window.addEventListener("hashchange", route);
  window.confideRoute = route; // lets a test re-render the current page at once
  route();
}

start();
