// One transaction: type, signer, block, outcome and its payload as signed.

import { fmtTime, t } from "../i18n.js";
import { badge, facts, h, short } from "../ui.js";

export async function render(ctx, id) {
  const x = await ctx.api.call("GET", `/v1/txs/${id}`);
  return h(
    "section",
    {},
    h("h1", {}, t("tx", { id: short(id, 16) })),
    facts([
      [t("tx_type"), x.type],
      [t("signer"), `${x.signer_name || ""} (${x.signer_org || ""}) ${x.signer}`],
      [t("block", { h: "" }), h("a", { href: `#/block/${x.height}` }, String(x.height))],
      [t("time"), fmtTime(x.created_at)],
      [t("code"), x.code === 0 ? badge("succeeded") : `${x.code} ${x.reason || ""}`],
      [t("summary"), x.summary || ""],
    ]),
    h("h2", {}, t("payload")),
    h("pre", { class: "code", testid: "tx-payload" }, JSON.stringify(x.payload, null, 2)),
  );
}
