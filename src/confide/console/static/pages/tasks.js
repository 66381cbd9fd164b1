// Tasks: create one from granted datasets (tee: a registered function, a scenario template or SQL;
// schedule: now, at a time, cron), and the list of mine.

import { sha256, hex } from "../api.js";
import { fmtTime, t } from "../i18n.js";
import { badge, field, h, notice, short, showErrors, table } from "../ui.js";

const enc = new TextEncoder();
// A scenario template names the registered function it runs (its inputs are the granted datasets).
const TEMPLATES = { credit: { fn: "credit_score" } };

export async function render(ctx) {
  const me = ctx.me;
  const [tasks, grants, functions] = await Promise.all([
    ctx.api.query(`tasks?requester=${me.keyId}`),
    ctx.api.query(`applications?applicant=${me.keyId}&status=approved`),
    ctx.api.call("GET", "/v1/tee/functions").catch(() => []),
  ]);
  const list = table(
    [
      { label: t("task"), cell: (x) => h("a", { href: `#/task/${x.id}`, testid: "task-link" }, short(x.id, 16)) },
      { label: t("engine"), cell: (x) => x.engine },
      { label: t("inputs"), cell: (x) => x.inputs.map((i) => i.dataset).join(", ") },
      { label: t("schedule"), cell: (x) => scheduleText(x.schedule) },
      { label: t("runs"), cell: (x) => String(x.runs.length) },
      { label: t("status"), cell: (x) => badge(x.status) },
      { label: t("time"), cell: (x) => fmtTime(x.submitted_at) },
    ],
    tasks.slice().sort((a, b) => b.submitted_at - a.submitted_at),
    { testid: "my-tasks" },
  );
  return h("section", {}, h("h1", {}, t("nav_tasks")), newTaskForm(ctx, grants.filter((g) => g.engines.includes("tee")), functions), h("h2", {}, t("my_tasks")), list);
}

export function scheduleText(s) {
  if (!s || s === "now") return t("sched_now");
  if (s.kind === "at") return `${t("sched_at")}: ${fmtTime(s.at)}`;
  return `${s.cron} (${s.tz})`;
}

function newTaskForm(ctx, grants, functions) {
  const note = notice();
  if (!grants.length) return h("div", { class: "card" }, h("h2", {}, t("new_task")), h("p", { class: "muted", testid: "no-grants" }, t("no_grants")));
  const codeKind = h(
    "select",
    { testid: "in-code-kind" },
    h("option", { value: "template:credit" }, t("template_credit")),
    functions.map((f) => h("option", { value: `fn:${f.name}` }, `${t("code_function")}: ${f.name}`)),
    h("option", { value: "sql" }, t("code_sql")),
  );
  const sql = h("textarea", { rows: 5, spellcheck: "false", placeholder: "SELECT … FROM filings f JOIN loans l USING (credit_code) …" });
  const sqlField = field("sql", t("sql"), sql);
  // one grant per dataset: the newest is picked by default when a dataset was granted twice
  const newest = new Map();
  for (const g of grants) if (!newest.has(g.dataset) || newest.get(g.dataset).submitted_at < g.submitted_at) newest.set(g.dataset, g);
  const inputs = h(
    "div",
    { class: "checks", id: "f-inputs", testid: "in-inputs" },
    grants.map((g) =>
      h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", name: "inputs", value: g.id, checked: newest.get(g.dataset) === g }),
        ` ${g.dataset} — ${g.columns.join(", ")} (${g.uses_left}/${g.max_uses})`,
      ),
    ),
  );
  const sched = h(
    "select",
    { testid: "in-schedule" },
    h("option", { value: "now" }, t("sched_now")),
    h("option", { value: "at" }, t("sched_at")),
    h("option", { value: "cron" }, t("sched_cron")),
  );
  const at = h("input", { type: "datetime-local" });
  const cron = h("input", { type: "text", placeholder: "0 2 * * *" });
  const tz = h("input", { type: "text", value: Intl.DateTimeFormat().resolvedOptions().timeZone || "Asia/Shanghai" });
  const atField = field("at", t("at_time"), at);
  const cronField = field("cron", t("cron"), cron);
  const tzField = field("tz", t("tz"), tz);
  const form = h(
    "form",
    { class: "card", testid: "task-form", novalidate: true },
    h("h2", {}, t("new_task")),
    field("engine", t("engine"), h("select", { disabled: true }, h("option", { value: "tee" }, t("engine_tee")))),
    field("code_kind", t("code_kind"), codeKind),
    sqlField,
    field("inputs", t("inputs"), inputs),
    field("schedule", t("schedule"), sched),
    atField,
    cronField,
    tzField,
    h("button", { type: "submit", class: "primary", testid: "task-submit" }, t("submit")),
    note,
  );
  const sync = () => {
    sqlField.hidden = codeKind.value !== "sql";
    atField.hidden = sched.value !== "at";
    cronField.hidden = tzField.hidden = sched.value !== "cron";
  };
  codeKind.addEventListener("change", sync);
  sched.addEventListener("change", sync);
  sync();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    note.clear();
    const errors = {};
    const picked = Array.from(form.querySelectorAll('input[name="inputs"]:checked'), (i) => grants.find((g) => g.id === i.value));
    if (!picked.length) errors.inputs = t("err_pick_one");
    else if (new Set(picked.map((g) => g.dataset)).size !== picked.length) errors.inputs = t("err_one_grant");
    let code = null;
    if (codeKind.value === "sql") {
      if (!sql.value.trim()) errors.sql = t("err_sql");
      code = sql.value.trim();
    } else {
      const name = codeKind.value.startsWith("fn:") ? codeKind.value.slice(3) : TEMPLATES.credit.fn;
      const fn = functions.find((f) => f.name === name);
      code = fn ? fn.code : null;
      if (!fn) errors.code_kind = t("err_required");
    }
    let schedule = "now";
    if (sched.value === "at") {
      const when = Date.parse(at.value);
      if (!Number.isFinite(when) || when <= Date.now()) errors.at = t("err_time");
      schedule = { kind: "at", at: when - (when % 60000) };
    } else if (sched.value === "cron") {
      if (cron.value.trim().split(/\s+/).length !== 5) errors.cron = t("err_cron");
      if (!tz.value.trim()) errors.tz = t("err_required");
      schedule = { kind: "cron", cron: cron.value.trim(), tz: tz.value.trim() };
    }
    if (!showErrors(form, errors)) return;
    const payload = {
      engine: "tee",
      inputs: picked.map((g) => ({ dataset: g.dataset, grant: g.id, columns: g.columns })),
      code,
      code_digest: hex(await sha256(enc.encode(code))),
      params: { recipient: ctx.api.session.recipientPublic },
      schedule,
    };
    try {
      const r = await ctx.api.submit("task.submit", payload);
      note.ok(t("task_created", { id: short(r.tx_id, 16) }));
      setTimeout(() => ctx.go(`#/task/${r.tx_id}`), 400);
    } catch (exc) {
      note.fail(exc);
    }
  });
  return form;
}
