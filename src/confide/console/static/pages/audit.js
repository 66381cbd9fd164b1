// The block explorer: newest blocks first, paged; each links to its transactions and verification.

import { fmtTime, t } from "../i18n.js";
import { button, h, short, table } from "../ui.js";

export async function render(ctx) {
  const body = h("div", {});
  const load = async (before) => {
    const params = { limit: "20" };
    if (before !== undefined) params.before = String(before);
    const data = await ctx.api.call("GET", "/v1/blocks", { params });
    const blocks = data.blocks || [];
    const oldest = blocks.length ? blocks[blocks.length - 1].height : 0;
    body.replaceChildren(
      table(
        [
          { label: t("height"), cell: (b) => h("a", { href: `#/block/${b.height}`, testid: "block-link" }, String(b.height)) },
          { label: t("time"), cell: (b) => fmtTime(b.time) },
          { label: t("txs"), cell: (b) => String(b.tx_count) },
          { label: t("hash"), cell: (b) => h("code", {}, short(b.hash, 20)) },
        ],
        blocks,
        { testid: "blocks" },
      ),
      h(
        "div",
        { class: "actions" },
        before !== undefined ? button(t("newer"), () => load(undefined)) : null,
        oldest > 0 ? button(t("older"), () => load(oldest), { testid: "older" }) : null,
      ),
    );
  };
  await load(undefined);
  return h("section", {}, h("h1", {}, t("blocks")), body);
}
