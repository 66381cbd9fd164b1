// A result's provenance as a graph: datasets -> grants -> task -> run (quote, measurement) ->
// approvals -> release; each node links to its transaction. Re-verified by this node from its own
// blocks (GET /v1/tee/provenance/{run}); the checks are listed under the graph.

import { provenanceGraph } from "../charts.js";
import { t } from "../i18n.js";
import { badge, facts, h, short, table } from "../ui.js";

export async function render(ctx, runId) {
  const report = await ctx.api.call("GET", `/v1/tee/provenance/${runId}`);
  const run = await ctx.api.query(`run/${runId}`);
  const task = await ctx.api.query(`task/${run.task}`);
  const release = await ctx.api.queryOrNull(`release/${runId}`);
  const okTx = Object.fromEntries(report.chain.map((c) => [c.tx, c.ok]));
  const check = (name) => report.checks.find((c) => c.check === name);
  const nodes = [];
  const edges = [];
  for (const inp of task.inputs) {
    nodes.push({ id: `d:${inp.dataset}`, kind: "dataset", label: t("pkind_dataset"), sub: inp.dataset, href: `#/dataset/${inp.dataset}` });
    const g = check(`grant ${inp.dataset}`);
    nodes.push({ id: inp.grant, kind: "grant", label: t("pkind_grant"), sub: short(inp.grant, 16), href: `#/tx/${inp.grant}`, ok: okTx[inp.grant] && (g ? g.ok : true) });
    edges.push([`d:${inp.dataset}`, inp.grant], [inp.grant, task.id]);
  }
  const quote = check("quote");
  nodes.push({ id: task.id, kind: "task", label: t("pkind_task"), sub: short(task.id, 16), href: `#/tx/${task.id}`, ok: okTx[task.id] });
  nodes.push({
    id: runId,
    kind: "run",
    label: t("pkind_run"),
    sub: quote ? quote.detail : short(runId, 16),
    href: `#/tx/${runId}`,
    ok: okTx[runId] && (quote ? quote.ok : false),
  });
  edges.push([task.id, runId]);
  for (const [dataset, d] of Object.entries((release && release.decisions) || {})) {
    nodes.push({ id: d.tx, kind: "approval", label: t("pkind_approval"), sub: dataset, href: `#/tx/${d.tx}`, ok: okTx[d.tx] && d.decision === "approve" });
    edges.push([runId, d.tx], [d.tx, "release"]);
  }
  nodes.push({ id: "release", kind: "release", label: t("pkind_release"), sub: release ? release.status : "—", ok: report.verified });
  const kinds = Object.fromEntries(["dataset", "grant", "task", "run", "approval", "release"].map((k) => [k, t(`pkind_${k}`)]));
  const graph = provenanceGraph(nodes, edges, { labels: { title: t("provenance_title", { id: short(runId, 16) }), kinds } });
  return h(
    "section",
    {},
    h("h1", {}, t("provenance_title", { id: short(runId, 16) })),
    h("p", { class: report.verified ? "notice ok" : "notice fail", testid: "provenance-verified" }, report.verified ? `✓ ${t("verified")} (${report.node}, ${t("height")} ${report.height})` : `✗ ${t("not_verified")}`),
    h("div", { class: "graph" }, graph),
    facts([[t("tee_type"), report.tee_type], [t("output_digest"), h("code", {}, report.output_digest || "")]]),
    h("h2", {}, t("checks")),
    table(
      [
        { label: t("checks"), cell: (c) => c.check },
        { label: t("status"), cell: (c) => badge(c.ok ? "succeeded" : "failed") },
        { label: t("summary"), cell: (c) => c.detail },
      ],
      report.checks,
      { testid: "provenance-checks" },
    ),
    h("h2", {}, t("txs")),
    table(
      [
        { label: t("summary"), cell: (c) => c.what },
        { label: t("tx_type"), cell: (c) => c.type || "" },
        { label: t("height"), cell: (c) => (c.height !== undefined ? h("a", { href: `#/block/${c.height}` }, String(c.height)) : "") },
        { label: t("tx", { id: "" }), cell: (c) => h("a", { href: `#/tx/${c.tx}` }, short(c.tx, 16)) },
      ],
      report.chain,
    ),
  );
}
