// Tasks: create one from granted datasets — tee (a registered function, a scenario template or SQL),
// psi (an ID column per side, the PSI protocol, who gets the intersection) or mpc joint statistics
// (ID and value columns per side, the psi run that aligns them, the dealer, group and cross keys) —
// with a schedule (now, at a time, cron); and the list of mine.

import { sha256, hex } from "../api.js";
import { fmtTime, t } from "../i18n.js";
import { badge, field, h, notice, short, showErrors, table } from "../ui.js";

const enc = new TextEncoder();
// A scenario template names the registered function it runs (its inputs are the granted datasets).
const TEMPLATES = { credit: { fn: "credit_score" } };

export async function render(ctx) {
  const me = ctx.me;
  const [tasks, grants, functions, engines, orgs] = await Promise.all([
    ctx.api.query(`tasks?requester=${me.keyId}`),
    ctx.api.query(`applications?applicant=${me.keyId}&status=approved`),
    ctx.api.call("GET", "/v1/tee/functions").catch(() => []),
    ctx.api.call("GET", "/v1/engines").catch(() => ({ psi: [], mpc: [] })),
    ctx.api.query("orgs"),
  ]);
  const psiRuns = await psiRunsOf(ctx, tasks);
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
  const form = newTaskForm(ctx, { grants, functions, engines, orgs, psiRuns });
  return h("section", {}, h("h1", {}, t("nav_tasks")), form, h("h2", {}, t("my_tasks")), list);
}

export function scheduleText(s) {
  if (!s || s === "now") return t("sched_now");
  if (s.kind === "at") return `${t("sched_at")}: ${fmtTime(s.at)}`;
  return `${s.cron} (${s.tz})`;
}


/** My succeeded psi runs whose intersection both nodes kept (what an mpc task aligns on). */
async function psiRunsOf(ctx, tasks) {
  const out = [];
  for (const task of tasks.filter((x) => x.engine === "psi" && x.params.output === "both")) {
    for (const id of task.runs) {
      const run = await ctx.api.query(`run/${id}`);
      if (run.status === "succeeded") out.push({ run: id, task, at: run.finished_at });
    }
  }
  return out.sort((a, b) => b.at - a.at);
}

function options(pairs, selected) {
  return pairs.map(([value, label]) => h("option", { value, selected: value === selected }, label));
}

function newTaskForm(ctx, { grants, functions, engines, orgs, psiRuns }) {
  const note = notice();
  const usable = (engine) => grants.filter((g) => g.engines.includes(engine));
  const offered = ["tee", "psi", "mpc"].filter((e) => usable(e).length);
  if (!offered.length) return h("div", { class: "card" }, h("h2", {}, t("new_task")), h("p", { class: "muted", testid: "no-grants" }, t("no_grants")));
  const engine = h("select", {}, options(offered.map((e) => [e, t(`engine_${e}`)]), offered[0]));
  const codeKind = h(
    "select",
    { testid: "in-code-kind" },
    h("option", { value: "template:credit" }, t("template_credit")),
    functions.map((f) => h("option", { value: `fn:${f.name}` }, `${t("code_function")}: ${f.name}`)),
    h("option", { value: "sql" }, t("code_sql")),
  );
  const sql = h("textarea", { rows: 5, spellcheck: "false", placeholder: "SELECT … FROM filings f JOIN loans l USING (credit_code) …" });
  const protocol = h("select", {}, options(engines.psi.map((e) => [e.name, e.name]), "ecdh"));
  const output = h("select", {}, options([["receiver", t("psi_receiver")], ["both", t("psi_both")]], "both"));
  const psiRun = h("select", {}, options(psiRuns.map((r) => [r.run, `${short(r.run, 12)} · ${r.task.inputs.map((i) => i.dataset).join(" ∩ ")}`])));
  const dealer = h("select", {}, options(orgs.map((o) => [o.id, `${o.name} (${o.id})`])));
  const groupKey = h("select", {});
  const crossKey = h("select", {});
  const nGroups = h("input", { type: "number", min: 1, max: 64, value: 4 });
  const nCross = h("input", { type: "number", min: 1, max: 64, value: 4 });
  const minCell = h("input", { type: "number", min: 0, max: 1000000, value: 0 });
  const inputs = h("div", { class: "inputs", id: "f-inputs", testid: "in-inputs" });
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
  const f = {
    code_kind: field("code_kind", t("code_kind"), codeKind),
    sql: field("sql", t("sql"), sql),
    protocol: field("protocol", t("psi_protocol"), protocol),
    output: field("output", t("psi_output"), output),
    psi_run: field("psi_run", t("mpc_psi_run"), psiRun),
    dealer: field("dealer", t("mpc_dealer"), dealer),
    group_key: field("group_key", t("mpc_group_key"), groupKey),
    n_groups: field("n_groups", t("mpc_n_groups"), nGroups),
    cross_key: field("cross_key", t("mpc_cross_key"), crossKey),
    n_cross: field("n_cross", t("mpc_n_cross"), nCross),
    min_cell: field("min_cell", t("mpc_min_cell"), minCell),
    at: field("at", t("at_time"), at),
    cron: field("cron", t("cron"), cron),
    tz: field("tz", t("tz"), tz),
  };
  const form = h(
    "form",
    { class: "card", testid: "task-form", novalidate: true },
    h("h2", {}, t("new_task")),
    field("engine", t("engine"), engine),
    f.code_kind, f.sql, f.protocol, f.output, f.psi_run, f.dealer,
    field("inputs", t("inputs"), inputs),
    f.group_key, f.n_groups, f.cross_key, f.n_cross, f.min_cell,
    field("schedule", t("schedule"), sched),
    f.at, f.cron, f.tz,
    h("button", { type: "submit", class: "primary", testid: "task-submit" }, t("submit")),
    note,
  );

  function drawInputs() {
    const e = engine.value;
    const list = usable(e);
    const newest = new Map(); // one grant per dataset: the newest is picked by default
    for (const g of list) if (!newest.has(g.dataset) || newest.get(g.dataset).submitted_at < g.submitted_at) newest.set(g.dataset, g);
    inputs.replaceChildren(
      ...list.map((g) =>
        h(
          "div",
          { class: "input-row" },
          h("label", { class: "check" }, h("input", { type: "checkbox", name: "inputs", value: g.id, checked: newest.get(g.dataset) === g }),
            ` ${g.dataset} (${g.uses_left}/${g.max_uses})`),
          e === "tee" ? h("span", { class: "muted" }, ` — ${g.columns.join(", ")}`) : null,
          e !== "tee" ? h("label", { class: "inline" }, ` ${t("id_column")} `, h("select", { name: `id-${g.id}`, testid: "id-column" }, options(g.columns.map((c) => [c, c]), g.columns.find((c) => /phone|code|id/.test(c))))) : null,
          e === "mpc"
            ? h("span", { class: "checks inline" }, ` ${t("value_columns")}: `, g.columns.map((c) =>
                h("label", { class: "check" }, h("input", { type: "checkbox", name: `val-${g.id}`, value: c, onchange: drawKeys }), ` ${c}`)))
            : null,
        ),
      ),
    );
    drawKeys();
  }

  function pickedGrants() {
    return Array.from(form.querySelectorAll('input[name="inputs"]:checked'), (i) => grants.find((g) => g.id === i.value));
  }

  function valueColumns(g) {
    return Array.from(form.querySelectorAll(`input[name="val-${g.id}"]:checked`), (i) => i.value);
  }

  function drawKeys() {
    const keys = pickedGrants().flatMap((g) => valueColumns(g).map((c) => `${g.dataset}:${c}`));
    const none = [["", t("none")]];
    const gk = groupKey.value;
    const ck = crossKey.value;
    groupKey.replaceChildren(...options([...none, ...keys.map((k) => [k, k])], gk));
    crossKey.replaceChildren(...options([...none, ...keys.map((k) => [k, k])], ck));
  }

  function sync() {
    const e = engine.value;
    const show = { tee: ["code_kind"], psi: ["protocol", "output"], mpc: ["psi_run", "dealer", "group_key", "n_groups", "cross_key", "n_cross", "min_cell"] }[e];
    for (const [name, el] of Object.entries(f)) if (!["at", "cron", "tz", "sql"].includes(name)) el.hidden = !show.includes(name);
    f.sql.hidden = !(e === "tee" && codeKind.value === "sql");
    f.at.hidden = sched.value !== "at";
    f.cron.hidden = f.tz.hidden = sched.value !== "cron";
  }
  engine.addEventListener("change", () => {
    drawInputs();
    sync();
  });
  codeKind.addEventListener("change", sync);
  sched.addEventListener("change", sync);
  inputs.addEventListener("change", drawKeys);
  drawInputs();
  sync();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    note.clear();
    const e = engine.value;
    const errors = {};
    const picked = pickedGrants();
    if (!picked.length) errors.inputs = t("err_pick_one");
    else if (new Set(picked.map((g) => g.dataset)).size !== picked.length) errors.inputs = t("err_one_grant");
    else if (e !== "tee" && picked.length !== 2) errors.inputs = t("err_two_inputs");
    const payload = { engine: e, params: {} };
    if (e === "tee") {
      let code = null;
      if (codeKind.value === "sql") {
        if (!sql.value.trim()) errors.sql = t("err_sql");
        code = sql.value.trim();
      } else {
        const name = codeKind.value.startsWith("fn:") ? codeKind.value.slice(3) : TEMPLATES.credit.fn;
        const fn = functions.find((x) => x.name === name);
        code = fn ? fn.code : null;
        if (!fn) errors.code_kind = t("err_required");
      }
      payload.inputs = picked.map((g) => ({ dataset: g.dataset, grant: g.id, columns: g.columns }));
      payload.code = code;
      payload.code_digest = code ? hex(await sha256(enc.encode(code))) : "";
      payload.params.recipient = ctx.api.session.recipientPublic;
    } else {
      // the requester's own org's input first (it is party 0 / the psi receiver)
      const ordered = picked.slice().sort((a, b) => (b.dataset.startsWith(`${ctx.me.org}/`) ? 1 : 0) - (a.dataset.startsWith(`${ctx.me.org}/`) ? 1 : 0));
      payload.inputs = ordered.map((g) => {
        const id = form.querySelector(`select[name="id-${g.id}"]`).value;
        const values = e === "mpc" ? valueColumns(g).filter((c) => c !== id) : [];
        return { dataset: g.dataset, grant: g.id, columns: [id, ...values] };
      });
      if (e === "psi") {
        const variant = engines.psi.find((x) => x.name === protocol.value);
        payload.code_digest = variant ? variant.code_digest : "";
        payload.params.output = output.value;
      } else {
        const stats = engines.mpc.find((x) => x.name === "joint-stats");
        payload.code_digest = stats ? stats.code_digest : "";
        if (!psiRun.value) errors.psi_run = t("err_psi_run");
        if (picked.some((g) => g.dataset.startsWith(`${dealer.value}/`))) errors.dealer = t("err_dealer");
        if (picked.length === 2 && picked.some((g) => valueColumns(g).filter((c) => c !== form.querySelector(`select[name="id-${g.id}"]`).value).length === 0)) {
          errors.inputs = t("err_values");
        }
        Object.assign(payload.params, { psi_run: psiRun.value, dealer: dealer.value, recipient: ctx.api.session.recipientPublic });
        const count = (el, name) => {
          const n = Number(el.value);
          if (!Number.isInteger(n) || n < 1 || n > 64) errors[name] = t("err_levels");
          return n;
        };
        if (groupKey.value) Object.assign(payload.params, { group_key: groupKey.value, n_groups: count(nGroups, "n_groups") });
        if (crossKey.value) {
          if (!groupKey.value) errors.cross_key = t("err_cross_needs_group");
          else if (crossKey.value.split(":")[0] === groupKey.value.split(":")[0]) errors.cross_key = t("err_cross_other");
          Object.assign(payload.params, { cross_key: crossKey.value, n_cross: count(nCross, "n_cross") });
        }
        const m = Number(minCell.value);
        if (!Number.isInteger(m) || m < 0) errors.min_cell = t("err_uses");
        else if (m > 0) payload.params.min_cell = m;
      }
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
    payload.schedule = schedule;
    if (!showErrors(form, errors)) return;
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
