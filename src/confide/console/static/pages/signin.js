// Sign in with the member's own key: imported here, checked against the ledger (member/<key id>).

import { Api, ApiError } from "../api.js";
import { t } from "../i18n.js";
import { importPem, KeyError, saveSession } from "../keys.js";
import { field, h, notice, showErrors } from "../ui.js";

export async function render(ctx) {
  const file = h("input", { type: "file", accept: ".pem,.key,.txt" });
  const paste = h("textarea", { rows: 5, spellcheck: "false", placeholder: "-----BEGIN PRIVATE KEY-----" });
  const note = notice();
  const form = h(
    "form",
    { class: "card narrow", testid: "signin-form", novalidate: true },
    h("h1", {}, t("signin_title")),
    h("p", { class: "muted" }, t("signin_help")),
    field("key", t("key_file"), file),
    field("pem", t("key_paste"), paste),
    h("button", { type: "submit", class: "primary", testid: "signin" }, t("sign_in")),
    note,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    note.clear();
    let pem = paste.value.trim();
    if (!pem && file.files.length) pem = await file.files[0].text();
    if (!showErrors(form, pem ? {} : { key: t("err_key_required") })) return;
    let session;
    try {
      session = await importPem(pem);
    } catch (exc) {
      showErrors(form, { key: exc instanceof KeyError ? t(`err_${exc.code}`) : String(exc.message) });
      return;
    }
    const api = new Api(session);
    let member;
    try {
      member = await api.call("GET", `/v1/query/member/${session.keyId}`);
    } catch (exc) {
      if (exc instanceof ApiError && (exc.status === 401 || exc.status === 404)) {
        showErrors(form, { key: t("err_not_member") });
      } else note.fail(exc);
      return;
    }
    if (!member.active) {
      showErrors(form, { key: t("err_not_member") });
      return;
    }
    if (member.org !== ctx.nodeOrg) {
      showErrors(form, { key: t("err_wrong_org", { org: member.org, node: ctx.nodeOrg }) });
      return;
    }
    await saveSession(session);
    ctx.signedIn(session, { ...member, keyId: session.keyId });
  });
  return form;
}
