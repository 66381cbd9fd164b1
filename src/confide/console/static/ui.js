// Small DOM helpers shared by the pages: elements, tables, forms with per-field errors, notices.

import { ApiError } from "./api.js";
import { statusText, t } from "./i18n.js";

/** h("div", {class: "x", onclick}, child, "text", [more]) -> Element (text is never parsed as HTML). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "testid") el.dataset.testid = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function short(id, n = 12) {
  return id ? String(id).slice(0, n) + "…" : "";
}

export function badge(status) {
  return h("span", { class: `badge st-${status}`, testid: "status" }, statusText(status));
}

/** A table: columns [{label, cell(row) -> node|string}], rows. */
export function table(columns, rows, attrs = {}) {
  if (!rows.length) return h("p", { class: "muted" }, t("nothing"));
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(r)))))),
  );
}

/** A definition list from [label, value] pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** What an API refusal means, in words (never a stack trace). */
export function explain(exc) {
  if (exc instanceof ApiError) {
    if (exc.code === "WRONG_ROLE" || exc.code === "FORBIDDEN" || (exc.details && exc.details.name === "FORBIDDEN")) {
      return t("refused_forbidden", { msg: exc.details.reason || exc.message });
    }
    if (exc.code === "TX_REFUSED") return t("refused", { msg: exc.details.reason || exc.message });
    return t("refused", { msg: `${exc.message} (${exc.code})` });
  }
  return t("error", { msg: exc && exc.message ? exc.message : String(exc) });
}

/** A notice area: notice.ok(text) / notice.fail(exc) / notice.info(text). */
export function notice() {
  const box = h("div", { class: "notice", role: "status", "aria-live": "polite", testid: "notice" });
  const set = (kind, text) => {
    box.className = `notice ${kind}`;
    box.textContent = text;
  };
  box.ok = (text) => set("ok", text);
  box.info = (text) => set("info", text);
  box.fail = (exc) => set("fail", typeof exc === "string" ? exc : explain(exc));
  box.clear = () => set("", "");
  return box;
}

/** A labelled form field with an error line under it (data-testid="err-<name>"). */
export function field(name, label, input, help) {
  input.name = input.name || name;
  input.id = input.id || `f-${name}`;
  if (!input.dataset.testid) input.dataset.testid = `in-${name}`;
  return h(
    "div",
    { class: "field", "data-field": name },
    h("label", { for: input.id }, label),
    input,
    help ? h("div", { class: "help" }, help) : null,
    h("div", { class: "field-error", testid: `err-${name}`, role: "alert" }),
  );
}

/** Show per-field errors {name: text}; returns true when there are none. */
export function showErrors(form, errors) {
  for (const el of form.querySelectorAll(".field")) {
    const msg = errors[el.dataset.field] || "";
    el.querySelector(".field-error").textContent = msg;
    el.classList.toggle("invalid", Boolean(msg));
  }
  const first = form.querySelector(".field.invalid input, .field.invalid textarea, .field.invalid select");
  if (first) first.focus();
  return Object.keys(errors).length === 0;
}

export function checkboxes(name, options, checked = () => false) {
  return h(
    "div",
    { class: "checks", id: `f-${name}`, testid: `in-${name}` },
    options.map(([value, label]) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name, value, checked: checked(value) }), " ", label),
    ),
  );
}

export function checkedValues(form, name) {
  return Array.from(form.querySelectorAll(`input[name="${name}"]:checked`), (i) => i.value);
}

/** A button that disables itself while its async action runs. */
export function button(label, action, attrs = {}) {
  const b = h("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
    } finally {
      b.disabled = false;
    }
  });
  return b;
}
