// One run: its attestation, result statement and release. Owners see what the requester would get
// and decide; the requester, once released, gets the result (decrypted here) with its charts.

import { ApiError, canonical, hex, sha256 } from "../api.js";
import { barChart, heatmap, histogram, rocCurve } from "../charts.js";
import { fmtNumber, fmtTime, t } from "../i18n.js";
import { segmentCells, statsFromShares } from "../mpc.js";
import { decodeTable, fetchResult, openBox } from "../tee.js";
import { badge, button, facts, h, notice, short, table } from "../ui.js";

export async function render(ctx, id) {
  const run = await ctx.api.query(`run/${id}`);
  const task = await ctx.api.query(`task/${run.task}`);
  const release = await ctx.api.queryOrNull(`release/${id}`);
  const st = run.statement || null;
  const parts = [
    h("h1", {}, t("run_page", { id: short(id, 16) })),
    facts([
      [t("task"), h("a", { href: `#/task/${task.id}` }, short(task.id, 16))],
      [t("status"), badge(run.status)],
      [t("started"), fmtTime(run.started_at)],
      [t("finished"), fmtTime(run.finished_at)],
      run.reason ? [t("reason"), run.reason] : null,
      run.attestation ? [t("tee_type"), run.attestation.tee_type] : null,
      run.attestation_digest ? [t("quote_digest"), h("code", {}, run.attestation_digest)] : null,
      run.output_digest ? [t("output_digest"), h("code", {}, run.output_digest)] : null,
    ]),
  ];
  if (run.status === "succeeded") {
    parts.push(h("p", {}, h("a", { href: `#/provenance/${id}`, testid: "provenance-link", class: "button" }, t("provenance"))));
  }
  if (st) parts.push(previewBlock(st.preview || {}));
  if (run.fl_rounds) parts.push(...flRounds(run));
  if (release) {
    const pending = release.required.filter((d) => !(d in release.decisions));
    parts.push(
      h("h2", {}, t("release")),
      facts([
        [t("release_status"), badge(release.status)],
        pending.length && release.status === "pending" ? ["", t("waiting_for", { who: pending.join(", ") })] : null,
      ]),
      table(
        [
          { label: t("dataset"), cell: (d) => d },
          { label: t("status"), cell: (d) => (release.decisions[d] ? badge(release.decisions[d].decision === "approve" ? "approved" : "rejected") : badge("pending")) },
          { label: t("time"), cell: (d) => fmtTime(release.decisions[d]?.at) },
        ],
        release.required,
        { testid: "decisions" },
      ),
    );
    if (release.metrics) parts.push(metricsBlock(release.metrics));
    const myDatasets = release.required.filter((d) => d.split("/")[0] === ctx.me.org && !(d in release.decisions));
    if (release.status === "pending") for (const d of myDatasets) parts.push(await ownerPanel(ctx, run, d));
    if (task.requester === ctx.me.keyId) parts.push(resultPanel(ctx, run, release, task));
  }
  return h("section", {}, parts);
}

/** Every recorded round of an fl run: who took part, who dropped, the model digest after it. */
function flRounds(run) {
  return [
    h("h2", {}, t("fl_rounds")),
    table(
      [
        { label: t("fl_round"), cell: (r) => (r.round === 0 ? t("fl_setup") : String(r.round)) },
        { label: t("fl_participants"), cell: (r) => r.participants.join(", ") },
        { label: t("fl_dropped"), cell: (r) => r.dropped.join(", ") || "—" },
        { label: t("fl_model_digest"), cell: (r) => h("code", {}, short(r.model_digest, 16)) },
      ],
      run.fl_rounds,
      { testid: "fl-rounds" },
    ),
  ];
}

/** The validation metrics on the release record (fl): what the owners see before they decide. */
function metricsBlock(metrics) {
  return h(
    "div",
    { class: "card", testid: "release-metrics" },
    h("h2", {}, t("val_metrics")),
    facts(Object.keys(metrics).sort().map((k) => [k, String(metrics[k])])),
  );
}

/** A released fl model, checked by digest against the run on the ledger. */
function renderModel(out, run) {
  const m = out.model;
  const ok = out.model_digest === run.output_digest;
  return facts([
    [t("fl_model_digest"), h("code", {}, out.model_digest)],
    ["", h("strong", { class: ok ? "good" : "bad", testid: "model-digest" }, ok ? t("digests_match") : t("digests_differ"))],
    [t("fl_model_kind"), `${m.spec.model}${m.spec.hidden ? ` (${m.spec.hidden})` : ""}`],
    [t("fl_features"), m.spec.features.join(", ")],
    [t("fl_params"), fmtNumber(m.params.length)],
  ]);
}

function previewBlock(p) {
  const rows = [
    [t("preview_rows"), fmtNumber(p.rows ?? 0)],
    p.min_group ? [t("min_group_check"), t("min_group_ok", { n: p.min_group.required, smallest: p.min_group.smallest })] : null,
  ];
  const m = p.metrics || {};
  if (m.auc_holdout !== undefined) rows.push([t("metrics"), `AUC ${m.auc_holdout} · train ${m.train_rows} · holdout ${m.holdout_rows}`]);
  return h(
    "div",
    { class: "card", testid: "preview-summary" },
    facts(rows),
    table(
      [
        { label: t("column"), cell: (c) => h("code", {}, c.name) },
        { label: t("type"), cell: (c) => c.type },
        { label: "min", cell: (c) => c.min ?? "" },
        { label: "max", cell: (c) => c.max ?? "" },
        { label: "mean", cell: (c) => c.mean ?? "" },
        { label: "nulls", cell: (c) => String(c.nulls) },
      ],
      p.columns || [],
    ),
  );
}

async function ownerPanel(ctx, run, dataset) {
  const note = notice();
  const sent = (await ctx.api.call("GET", `/v1/tee/transfers/${run.id}`).catch(() => [])).find((x) => x.dataset === dataset);
  const received = run.statement?.input_digests?.[dataset];
  const same = sent && sent.input_digest === received;
  const reason = h("input", { type: "text", placeholder: t("reason"), maxlength: 2000, testid: "release-reason" });
  const actions = h(
    "div",
    { class: "row-actions" },
    button(t("approve_release"), () => decide("approve"), { class: "primary", testid: "release-approve" }),
    reason,
    button(t("reject_release"), () => decide("reject"), { testid: "release-reject" }),
  );
  async function decide(decision) {
    const payload = { run: run.id, dataset, decision, reason: reason.value.trim() };
    if (decision === "approve" && sent) payload.input_digest = sent.input_digest;
    try {
      await ctx.api.submit("release.decide", payload);
      note.ok(t("decided"));
      actions.replaceChildren(badge(decision === "approve" ? "approved" : "rejected"));
    } catch (exc) {
      note.fail(exc instanceof ApiError ? exc : String(exc));
    }
  }
  return h(
    "div",
    { class: "card review", testid: "owner-review", "data-dataset": dataset },
    h("h2", {}, t("owner_review", { dataset })),
    h("p", {}, t("owner_review_help")),
    run.statement
      ? facts([
          [t("input_sent"), h("code", {}, sent ? sent.input_digest : "—")],
          [t("input_received"), h("code", {}, received || "—")],
          ["", h("strong", { class: same ? "good" : "bad", testid: "digests" }, same ? t("digests_match") : t("digests_differ"))],
        ])
      : h("p", { class: "muted" }, t(run.fl_rounds ? "fl_review_help" : "mpc_review_help")),
    actions,
    note,
  );
}

function resultPanel(ctx, run, release, task) {
  const note = notice();
  const out = h("div", { testid: "result" });
  const get = button(t("get_result"), async () => {
    note.clear();
    try {
      if (task.engine === "mpc") {
        out.replaceChildren(...renderSegments(await fetchMpcResult(ctx.api, run, task), task));
      } else if (task.engine === "fl") {
        out.replaceChildren(renderModel(await ctx.api.call("POST", `/v1/fl/models/${run.id}`, { body: {} }), run));
      } else {
        const data = decodeTable(await fetchResult(ctx.api, ctx.api.session, run.id));
        out.replaceChildren(...renderResult(data));
      }
    } catch (exc) {
      note.fail(exc);
    }
  }, { class: "primary", testid: "get-result", disabled: release.status !== "released" });
  return h("div", { class: "card" }, h("h2", {}, t("result")), get, note, out);
}

function renderResult({ columns, rows, metrics }) {
  const parts = [];
  if (columns.includes("score")) {
    const scores = rows.map((r) => r.score).filter((s) => s !== null && s !== undefined);
    parts.push(
      facts([
        [t("applicants"), fmtNumber(rows.length)],
        [t("scored"), fmtNumber(scores.length)],
        metrics.auc_holdout !== undefined ? [t("auc"), String(metrics.auc_holdout)] : null,
      ]),
      h(
        "div",
        { class: "charts" },
        h("figure", {}, histogram(scores, { bins: 24, min: 300, max: 900, labels: { title: t("score_dist"), x: t("score"), y: t("count"), empty: t("nothing") } })),
        Array.isArray(metrics.roc_holdout) && metrics.roc_holdout.length
          ? h("figure", {}, rocCurve(metrics.roc_holdout, { auc: metrics.auc_holdout, labels: { title: t("roc"), x: t("fpr"), y: t("tpr"), chance: t("chance"), auc: t("auc") } }))
          : null,
        columns.includes("band")
          ? h("figure", {}, barChart(
              ["A", "B", "C", "D", "E"].map((b) => [b, rows.filter((r) => r.band === b).length]),
              { labels: { title: t("bands"), x: t("band"), y: t("count") } },
            ))
          : null,
      ),
    );
  }
  const first = rows.slice(0, 20);
  parts.push(
    h("h3", {}, t("first_rows", { n: first.length })),
    table(columns.map((c) => ({ label: c, cell: (r) => (r[c] === null || r[c] === undefined ? "" : String(r[c])) })), first, { testid: "result-table" }),
  );
  return parts;
}

/** Both parties' released shares, each opened with the requester's key; their digests must be the
 * commitment the run reported on the ledger (interfaces.mpc.fetch_mpc_result). */
async function fetchMpcResult(api, run, task) {
  const out = await api.call("POST", `/v1/mpc/results/${run.id}`, { body: { min_height: api.lastHeight } });
  const digests = {};
  const answers = [];
  for (const a of out.parties) {
    const share = await openBox(api.session, a.box, task.id, a.share_digest);
    digests[a.org] = a.share_digest;
    answers.push({ party: a.party, session: a.session, spec: a.spec, share });
  }
  const commitment = hex(await sha256(new TextEncoder().encode(canonical(digests))));
  if (commitment !== run.output_digest) throw new Error("the shares do not match the commitment in the run's output digest");
  const orgs = task.inputs.map((i) => i.dataset.split("/")[0]);
  const named = statsFromShares(answers, task, orgs);
  return { named, cells: task.params.cross_key ? segmentCells(named, task) : [] };
}

function renderSegments({ named, cells }, task) {
  const p = task.params;
  const parts = [facts([[t("aligned_rows"), fmtNumber(named.count)]])];
  if (cells.length) {
    const gk = String(p.group_key).split(":").pop();
    const ck = String(p.cross_key).split(":").pop();
    const rows = Array.from({ length: Number(p.n_groups) }, (_, i) => `${gk} ${i}`);
    const cols = Array.from({ length: Number(p.n_cross) }, (_, j) => `${ck} ${j}`);
    const grid = (value) => rows.map((_, i) => cols.map((_, j) => value(cells.find((c) => c[gk] === i && c[ck] === j))));
    const figures = [
      h("figure", { testid: "segments-count" }, heatmap(rows, cols, grid((c) => (c && !c.suppressed ? c.count : null)), {
        labels: { title: t("segments_count"), x: ck, y: gk },
        format: (v) => fmtNumber(v),
      })),
    ];
    const valueCols = Object.keys(cells.find((c) => !c.suppressed) || {}).filter((k) => ![gk, ck, "count", "suppressed"].includes(k));
    for (const col of valueCols) {
      figures.push(
        h("figure", {}, heatmap(rows, cols, grid((c) => (c && !c.suppressed && c[col] && c[col].mean !== null ? c[col].mean : null)), {
          labels: { title: t("segments_mean", { col }), x: ck, y: gk },
          format: (v) => fmtNumber(Math.round(v * 10) / 10),
        })),
      );
    }
    parts.push(h("div", { class: "charts" }, figures), h("p", { class: "muted" }, t("segments_suppressed")));
  }
  return parts;
}
