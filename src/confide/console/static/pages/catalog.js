// The catalog across the consortium: org -> unit -> dataset, with search and filters.

import { t, fmtNumber } from "../i18n.js";
import { h } from "../ui.js";

export async function render(ctx) {
  const tree = await ctx.api.query("catalog");
  const search = h("input", { type: "search", placeholder: t("search"), testid: "catalog-search", "aria-label": t("search") });
  const orgSel = h(
    "select",
    { testid: "catalog-org", "aria-label": t("org") },
    h("option", { value: "" }, t("all_orgs")),
    tree.map((o) => h("option", { value: o.id }, `${o.name} (${o.id})`)),
  );
  const kinds = [...new Set(tree.flatMap((o) => o.units.flatMap((u) => u.datasets.map((d) => d.kind))))];
  const kindSel = h(
    "select",
    { testid: "catalog-kind", "aria-label": t("kind") },
    h("option", { value: "" }, t("all_kinds")),
    kinds.map((k) => h("option", { value: k }, t(`kind_${k}`))),
  );
  const list = h("div", { class: "tree", testid: "catalog-tree" });

  function draw() {
    const q = search.value.trim().toLowerCase();
    const parts = [];
    for (const org of tree) {
      if (orgSel.value && org.id !== orgSel.value) continue;
      const units = [];
      for (const unit of org.units) {
        const ds = unit.datasets.filter(
          (d) =>
            (!kindSel.value || d.kind === kindSel.value) &&
            (!q || d.id.toLowerCase().includes(q) || d.title.toLowerCase().includes(q)),
        );
        if (!ds.length) continue;
        units.push(
          h(
            "li",
            { class: "unit" },
            h("span", { class: "unit-name" }, `${unit.name} · ${unit.id}`),
            h(
              "ul",
              {},
              ds.map((d) =>
                h(
                  "li",
                  { class: "dataset" },
                  h("a", { href: `#/dataset/${d.id}`, testid: `dataset-link`, "data-id": d.id }, d.title),
                  h("span", { class: "muted" }, ` ${d.id} · ${t(`kind_${d.kind}`)} · v${d.version} · ${fmtNumber(d.rows)} ${t("rows").toLowerCase()}`),
                ),
              ),
            ),
          ),
        );
      }
      if (units.length) parts.push(h("li", { class: "org" }, h("strong", {}, `${org.name} (${org.id})`), h("ul", {}, units)));
    }
    list.replaceChildren(parts.length ? h("ul", {}, parts) : h("p", { class: "muted" }, t("no_datasets")));
  }
  for (const el of [search, orgSel, kindSel]) el.addEventListener("input", draw);
  draw();
  return h("section", {}, h("h1", {}, t("nav_catalog")), h("div", { class: "filters" }, search, orgSel, kindSel), list);
}
