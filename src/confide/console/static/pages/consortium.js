// The consortium: member orgs, each org node's health, and whether every node reports the same
// state root (the ledger's whole state, hashed).

import { fmtNumber, t } from "../i18n.js";
import { badge, h, short, table } from "../ui.js";

export async function render(ctx) {
  const [orgs, health] = await Promise.all([ctx.api.query("orgs"), ctx.api.call("GET", "/v1/consortium/nodes")]);
  const members = await Promise.all(orgs.map((o) => ctx.api.query(`members/${o.id}`).catch(() => [])));
  const verdict =
    health.same_state === true
      ? h("p", { class: "notice ok", testid: "same-state" }, `✓ ${t("same_state")}`)
      : health.same_state === false
        ? h("p", { class: "notice fail", testid: "same-state" }, `✗ ${t("diff_state")}`)
        : h("p", { class: "notice info", testid: "same-state" }, t("catching_up"));
  return h(
    "section",
    {},
    h("h1", {}, t("nav_consortium")),
    h("h2", {}, t("members")),
    table(
      [
        { label: t("org"), cell: (o) => o.id },
        { label: t("name"), cell: (o) => o.name },
        { label: t("members"), cell: (o) => fmtNumber(members[orgs.indexOf(o)].filter((m) => m.active).length) },
      ],
      orgs,
      { testid: "orgs" },
    ),
    h("h2", {}, t("nodes")),
    verdict,
    table(
      [
        { label: t("org"), cell: (n) => n.org },
        { label: t("status"), cell: (n) => (n.reachable ? badge("active") : h("span", { class: "badge st-failed" }, `${t("unreachable")}: ${n.error || ""}`)) },
        { label: t("height"), cell: (n) => (n.height ?? "") + "" },
        { label: t("state_root"), cell: (n) => h("code", {}, short(n.state_root || "", 24)) },
      ],
      health.nodes,
      { testid: "nodes" },
    ),
  );
}
