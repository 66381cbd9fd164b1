// One block: header, every transaction with its signer, and this node's re-verification of it.

import { fmtTime, t } from "../i18n.js";
import { badge, facts, h, short, table } from "../ui.js";

export async function render(ctx, height) {
  const b = await ctx.api.call("GET", `/v1/blocks/${height}`);
  const v = b.verification || { ok: false, checks: [] };
  return h(
    "section",
    {},
    h("h1", {}, t("block", { h: b.height })),
    h("p", { class: v.ok ? "notice ok" : "notice fail", testid: "block-verified" }, v.ok ? `✓ ${t("block_verified")}` : `✗ ${t("block_failed")}`),
    facts([
      [t("hash"), h("code", {}, b.hash)],
      ["prev", h("code", {}, b.prev_hash || "")],
      [t("time"), fmtTime(b.time)],
      b.state_root ? [t("state_root"), h("code", {}, b.state_root)] : null,
    ]),
    h("h2", {}, t("txs")),
    table(
      [
        { label: "#", cell: (x) => String(x.index) },
        { label: t("tx_type"), cell: (x) => h("a", { href: `#/tx/${x.tx_id}` }, x.type) },
        { label: t("signer"), cell: (x) => `${x.signer_name} (${x.signer_org}) ${short(x.signer, 8)}` },
        { label: t("summary"), cell: (x) => x.summary },
        { label: t("code"), cell: (x) => (x.code === 0 ? badge("succeeded") : `${x.code} ${x.reason || ""}`) },
      ],
      b.txs || [],
      { testid: "block-txs" },
    ),
    h("h2", {}, t("checks")),
    table(
      [
        { label: t("checks"), cell: (c) => c.name },
        { label: t("status"), cell: (c) => badge(c.ok ? "succeeded" : "failed") },
        { label: t("summary"), cell: (c) => c.detail || "" },
      ],
      v.checks,
    ),
  );
}
