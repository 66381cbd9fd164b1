// One task: its inputs and code (as on the ledger), run it now (tee, with live progress), its runs,
// its scheduled slots, cancel.

import { ApiError } from "../api.js";
import { fmtTime, t } from "../i18n.js";
import { runEngine } from "../runs.js";
import { runTee } from "../tee.js";
import { badge, button, facts, h, notice, short, table } from "../ui.js";
import { scheduleText } from "./tasks.js";

export async function render(ctx, id) {
  const task = await ctx.api.query(`task/${id}`);
  const runs = await Promise.all(task.runs.map((r) => ctx.api.query(`run/${r}`)));
  const note = notice();
  const log = h("ol", { class: "log", testid: "run-log" });
  const say = (step, detail) => {
    const text = t(`run_progress_${step}`, { detail: detail || "" });
    const last = log.lastElementChild;
    if ((step === "inputs" || step === "engine") && last && last.dataset.step === step) last.textContent = text;
    else log.append(h("li", { "data-step": step }, text));
  };
  const mine = task.requester === ctx.me.keyId;
  const actions = [];
  if (mine && task.status === "active" && ["tee", "psi", "mpc"].includes(task.engine) && (!task.schedule || task.schedule === "now")) {
    actions.push(
      button(t("run_now"), async () => {
        log.replaceChildren();
        note.clear();
        try {
          const out = task.engine === "tee" ? await runTee(ctx.api, task, say) : await runEngine(ctx.api, task, say);
          note.ok(t(task.engine === "tee" ? "run_done" : "run_done_engine"));
          setTimeout(() => ctx.go(`#/run/${out.run}`), 800);
        } catch (exc) {
          note.fail(exc instanceof ApiError ? t("run_failed", { reason: `${exc.code}: ${exc.message}` }) : exc);
        }
      }, { class: "primary", testid: "run-now" }),
    );
  }
  if (mine && task.status === "active") {
    actions.push(
      button(t("cancel"), async () => {
        try {
          await ctx.api.submit("task.cancel", { task: id, reason: "cancelled in the console" });
          ctx.go(`#/task/${id}`);
        } catch (exc) {
          note.fail(exc);
        }
      }, { testid: "task-cancel" }),
    );
  }
  const parts = [
    h("h1", {}, `${t("task")} ${short(id, 16)}`),
    facts([
      [t("engine"), task.engine],
      [t("status"), badge(task.status)],
      [t("schedule"), scheduleText(task.schedule)],
      [t("time"), fmtTime(task.submitted_at)],
      [t("inputs"), h("ul", {}, task.inputs.map((i) => h("li", {}, h("a", { href: `#/dataset/${i.dataset}` }, i.dataset), ` — ${i.columns.join(", ")}`)))],
    ]),
    h("div", { class: "actions" }, actions),
    note,
    log,
    h("h2", {}, t("runs")),
    table(
      [
        { label: t("run"), cell: (r) => h("a", { href: `#/run/${r.id}`, testid: "run-link" }, short(r.id, 16)) },
        { label: t("status"), cell: (r) => badge(r.status) },
        { label: t("started"), cell: (r) => fmtTime(r.started_at) },
        { label: t("finished"), cell: (r) => fmtTime(r.finished_at) },
        { label: t("reason"), cell: (r) => r.reason || "" },
      ],
      runs.sort((a, b) => b.started_at - a.started_at),
      { testid: "runs" },
    ),
  ];
  if (mine && task.schedule && task.schedule !== "now") {
    const slots = await ctx.api.call("GET", `/v1/scheduler/tasks/${id}/slots`).catch(() => ({ slots: [] }));
    parts.push(
      h("h2", {}, t("slots")),
      table(
        [
          { label: t("time"), cell: (s) => fmtTime(s.slot) },
          { label: t("status"), cell: (s) => s.state },
          { label: t("run"), cell: (s) => (s.run ? h("a", { href: `#/run/${s.run}` }, short(s.run, 16)) : "") },
          { label: t("reason"), cell: (s) => s.error || "" },
        ],
        slots.slots,
      ),
    );
  }
  parts.push(h("h2", {}, t("code_kind")), h("pre", { class: "code", testid: "task-code" }, task.code || task.code_digest));
  return h("section", {}, parts);
}
