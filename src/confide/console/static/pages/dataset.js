// A dataset: schema, versions, digest, kind, synthetic preview, approval policy, usage history;
// and the application form (analysts).

import { t, fmtNumber, fmtTime } from "../i18n.js";
import { badge, checkboxes, checkedValues, facts, field, h, notice, short, showErrors, table } from "../ui.js";

const ENGINES = ["tee", "psi", "mpc", "fl", "api"];
const DAY = 86_400_000;

export async function render(ctx, id) {
  const ds = await ctx.api.query(`dataset/${id}`);
  const latest = ds.versions[ds.versions.length - 1];
  const [preview, apps, usages] = await Promise.all([
    ctx.api.call("GET", `/v1/preview/${id}`, { params: { rows: "5" } }).catch(() => null),
    ctx.api.query(`applications?dataset=${encodeURIComponent(id)}`),
    ctx.api.query(`usages?dataset=${encodeURIComponent(id)}`),
  ]);
  const levels = ds.approval_levels.map((l) => t(`level_${l}`)).join(" → ");
  const parts = [
    h("h1", {}, ds.title),
    facts([
      ["ID", h("code", {}, ds.id)],
      [t("kind"), t(`kind_${ds.kind}`)],
      [t("version"), `v${latest.version} · ${fmtNumber(latest.row_count)} ${t("rows")}`],
      [t("digest"), h("code", { testid: "dataset-digest" }, latest.content_digest)],
      [t("approval_levels"), levels],
      [t("min_group"), ds.min_group_size ? String(ds.min_group_size) : t("none")],
      [t("visibility"), ds.visibility.mode + (ds.visibility.orgs.length ? `: ${ds.visibility.orgs.join(", ")}` : "")],
      ds.description ? [t("description"), ds.description] : null,
    ]),
  ];
  if (ds.org !== ctx.me.org) {
    parts.push(h("div", { class: "actions" }, applyForm(ctx, ds)));
  }
  parts.push(
    h("h2", {}, t("schema")),
    table(
      [
        { label: t("column"), cell: (c) => h("code", {}, c.name) },
        { label: t("type"), cell: (c) => c.type },
        { label: t("nullable"), cell: (c) => (c.nullable ? "✓" : "") },
        { label: t("description"), cell: (c) => c.description || "" },
      ],
      latest.schema,
    ),
    h("h2", {}, t("versions")),
    table(
      [
        { label: t("version"), cell: (v) => `v${v.version}` },
        { label: t("rows"), cell: (v) => fmtNumber(v.row_count) },
        { label: t("digest"), cell: (v) => h("code", {}, short(v.content_digest, 16)) },
        { label: t("time"), cell: (v) => fmtTime(v.published_at) },
      ],
      ds.versions,
    ),
  );
  if (preview && preview.rows.length) {
    const cols = Object.keys(preview.rows[0]);
    parts.push(
      h("h2", {}, t("preview")),
      table(cols.map((c) => ({ label: c, cell: (r) => String(r[c] ?? "") })), preview.rows, { testid: "preview", class: "preview" }),
    );
  }
  parts.push(
    h("h2", {}, t("usage")),
    table(
      [
        { label: t("applicant_org"), cell: (a) => a.applicant_org },
        { label: t("purpose"), cell: (a) => a.purpose },
        { label: t("engines"), cell: (a) => a.engines.join(", ") },
        { label: t("status"), cell: (a) => badge(a.status) },
        { label: t("uses"), cell: (a) => `${a.uses}/${a.max_uses}` },
        { label: t("expires"), cell: (a) => fmtTime(a.expires_at) },
      ],
      apps,
      { testid: "usage" },
    ),
  );
  if (usages.length) parts.push(h("p", { class: "muted" }, `API: ${usages.length}`));
  return h("section", {}, parts);
}

function applyForm(ctx, ds) {
  const latest = ds.versions[ds.versions.length - 1];
  const note = notice();
  const purpose = h("textarea", { rows: 2, maxlength: 2000 });
  const uses = h("input", { type: "number", min: 1, max: 1000000, value: 3 });
  const expires = h("input", { type: "date", value: new Date(Date.now() + 30 * DAY).toISOString().slice(0, 10) });
  const form = h(
    "form",
    { class: "card", testid: "apply-form", novalidate: true, hidden: true },
    h("h2", {}, t("apply_title", { dataset: ds.id })),
    field("purpose", t("purpose"), purpose),
    field("columns", t("columns"), checkboxes("columns", latest.schema.map((c) => [c.name, c.name]))),
    field("engines", t("engines"), checkboxes("engines", ENGINES.map((e) => [e, e]), (e) => e === "tee")),
    field("max_uses", t("max_uses"), uses),
    field("expires_at", t("expires_at"), expires),
    h("button", { type: "submit", class: "primary", testid: "apply-submit" }, t("submit")),
    note,
  );
  const open = h("button", { type: "button", class: "primary", testid: "apply-open", onclick: () => (form.hidden = !form.hidden) }, t("apply"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    note.clear();
    const errors = {};
    const columns = checkedValues(form, "columns");
    const engines = checkedValues(form, "engines");
    const n = Number(uses.value);
    const until = Date.parse(expires.value + "T23:59:59Z");
    if (!purpose.value.trim()) errors.purpose = t("err_required");
    if (!columns.length) errors.columns = t("err_pick_one");
    if (!engines.length) errors.engines = t("err_pick_one");
    if (!Number.isInteger(n) || n < 1 || n > 1000000) errors.max_uses = t("err_uses");
    if (!Number.isFinite(until) || until <= Date.now()) errors.expires_at = t("err_future");
    if (!showErrors(form, errors)) return;
    try {
      const r = await ctx.api.submit("application.submit", {
        dataset: ds.id,
        purpose: purpose.value.trim(),
        columns,
        engines,
        max_uses: n,
        expires_at: until,
      });
      note.ok(t("applied", { id: short(r.tx_id, 16) }));
      form.querySelector("button[type=submit]").disabled = true;
    } catch (exc) {
      note.fail(exc);
    }
  });
  return h("div", {}, open, form);
}
