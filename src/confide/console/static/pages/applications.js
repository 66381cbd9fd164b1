// Applications: mine (with status), the approvals inbox of owners (multi-level), the grants my org
// issued (expiry, uses left) with revoke. Every action is a ledger tx signed in this browser; the
// contract decides who may do what and its refusal is shown as it is.

import { fmtTime, t } from "../i18n.js";
import { badge, button, h, notice, table } from "../ui.js";

function progress(app) {
  return app.required_levels
    .map((l) => (app.approvals.some((a) => a.level === l) ? "✓ " : "… ") + t(`level_${l}`))
    .join(" → ");
}

function nextLevel(app) {
  return app.required_levels[app.approvals.length];
}

// The console does not decide who may approve: it offers the action to the owner org's members and
// shows the contract's answer (a refusal names the rule). This hint only says whose turn it is.
function turnOf(app) {
  return t("waiting_for", { who: t(`level_${nextLevel(app)}`) });
}

function reasonBox(testid) {
  return h("input", { type: "text", placeholder: t("reason"), testid, maxlength: 2000, class: "reason" });
}

export async function render(ctx) {
  const me = ctx.me;
  const [mine, pending, issued] = await Promise.all([
    ctx.api.query(`applications?applicant=${me.keyId}`),
    ctx.api.query(`applications?owner_org=${me.org}&status=pending`),
    ctx.api.query(`applications?owner_org=${me.org}`),
  ]);
  const note = notice();

  const decideCell = (app) => {
    if (app.applicant === me.keyId) return h("span", { class: "muted" }, "—");
    const reason = reasonBox("reject-reason");
    const err = h("div", { class: "field-error", testid: "err-reason" });
    const box = h(
      "div",
      { class: "row-actions" },
      button(t("approve"), async () => {
        try {
          await ctx.api.submit("application.approve", { application: app.id, level: nextLevel(app) });
          note.ok(t("approved_msg"));
          box.replaceChildren(badge("approved"));
        } catch (exc) {
          note.fail(exc);
        }
      }, { class: "primary", testid: "approve", "data-app": app.id }),
      reason,
      button(t("reject"), async () => {
        if (!reason.value.trim()) {
          err.textContent = t("err_reason");
          return;
        }
        try {
          await ctx.api.submit("application.reject", { application: app.id, level: nextLevel(app), reason: reason.value.trim() });
          note.ok(t("rejected_msg"));
          box.replaceChildren(badge("rejected"));
        } catch (exc) {
          note.fail(exc);
        }
      }, { testid: "reject", "data-app": app.id }),
      err,
    );
    return box;
  };

  const revokeCell = (app) => {
    if (!["approved", "pending"].includes(app.status)) return "";
    const reason = reasonBox("revoke-reason");
    const err = h("div", { class: "field-error", testid: "err-revoke" });
    const box = h(
      "div",
      { class: "row-actions" },
      reason,
      button(t("revoke"), async () => {
        if (!reason.value.trim()) {
          err.textContent = t("err_reason");
          return;
        }
        try {
          await ctx.api.submit("application.revoke", { application: app.id, reason: reason.value.trim() });
          note.ok(t("revoked_msg"));
          box.replaceChildren(badge("revoked"));
        } catch (exc) {
          note.fail(exc);
        }
      }, { testid: "revoke", "data-app": app.id }),
      err,
    );
    return box;
  };

  const inbox = pending.filter((a) => a.applicant !== me.keyId);
  const common = [
    { label: t("dataset"), cell: (a) => h("a", { href: `#/dataset/${a.dataset}` }, a.dataset) },
    { label: t("purpose"), cell: (a) => a.purpose },
    { label: t("columns"), cell: (a) => a.columns.join(", ") },
    { label: t("engines"), cell: (a) => a.engines.join(", ") },
  ];
  const sections = [h("h1", {}, t("nav_applications")), note];
  sections.push(
    h("h2", {}, t("my_applications")),
    table(
      [
        ...common,
        { label: t("status"), cell: (a) => badge(a.status) },
        { label: t("progress"), cell: progress },
        { label: t("uses_left"), cell: (a) => String(a.uses_left) },
        { label: t("expires"), cell: (a) => fmtTime(a.expires_at) },
      ],
      mine,
      { testid: "my-applications" },
    ),
  );
  {
    sections.push(
      h("h2", {}, t("inbox")),
      table(
        [
          ...common,
          { label: t("applicant_org"), cell: (a) => a.applicant_org },
          { label: t("progress"), cell: (a) => h("span", {}, progress(a), h("br"), h("span", { class: "muted" }, turnOf(a))) },
          { label: "", cell: decideCell },
        ],
        inbox,
        { testid: "inbox" },
      ),
      h("h2", {}, t("grants")),
      table(
        [
          ...common,
          { label: t("applicant_org"), cell: (a) => a.applicant_org },
          { label: t("status"), cell: (a) => badge(a.status) },
          { label: t("uses_left"), cell: (a) => `${a.uses_left} / ${a.max_uses}` },
          { label: t("expires"), cell: (a) => fmtTime(a.expires_at) },
          { label: "", cell: revokeCell },
        ],
        issued.filter((a) => a.status !== "pending"),
        { testid: "grants" },
      ),
    );
  }
  return h("section", {}, sections);
}
