"""Joint statistics on PSI-aligned rows held by two parties (vertical split, same row order).

Party ``a`` holds ``k_a`` numeric columns and (if it is the ``key_owner``) an integer group key
in ``[0, n_groups)``; party ``b`` holds ``k_b`` columns. Outputs, as shares until revealed:
count, per-column sum / mean / variance, the full covariance matrix of all ``k_a + k_b`` columns
(population, ``ddof = 0``), and per group (key of one party, values of the other): count, sum,
mean, variance of each of the other party's columns.

How (no truncation anywhere, so no probabilistic failure):

1. Each owner rescales its own columns locally: ``z = x / 2^e - o / 2^F`` with ``e = ceil(log2
   std)`` and ``o`` the rounded mean, so ``std(z) <= 1``, and encodes ``z`` at ``F`` bits. Sums
   and moments of its own columns are local ring sums (exact). ``e``, ``o`` and the local sums are
   secret-shared (32-byte seeds to the peer) — they are outputs, released with the rest.
2. Cross moments ``[Z_key | onehot(key)]^T [Z_other | Z_other^2]`` come from one dealer-assisted
   private product (``beaver.Spec.private``): one message each way, ``n x (k + G)`` and
   ``n x 2k`` ring words. Only the needed blocks are kept (``Z_key^T Z_other^2`` is dropped
   before anything is revealed).
3. Means, variances and covariances are public post-processing of the revealed sums (``finalize``).

Error: inputs are rounded to ``2^(e-F)`` (``F = 16``: 1.5e-5 of a column's std scale), so sums are
exact when every value is a multiple of ``2^(e-F)`` (e.g. integers when std < 65536); moments
carry only that rounding (relative error ~1e-5 or better). No overflow while ``n < 2^31``:
``sum z^2 <= n`` at ``2F = 32`` fractional bits stays below ``2^63``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import fixedpoint as fp
from .beaver import CompareMaterial, ElemTriple, Material, PrivatePair, Spec, matmul_ring
from .compare import geq_public
from .errors import MpcError
from .fixedpoint import Ring
from .party import PartyContext
from .program import Inbound, Round

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StatsSpec:
    """Public parameters both parties agree on before the run.

    ``n_levels`` > 0: the crossed layout (see ``cell_map``): the value party also gives the 0/1
    indicators of its own tier (``levels``, n x n_levels), and the cell counts (group x level) are
    an output. ``min_cell`` > 0: every group, level and cell with fewer rows is suppressed *inside*
    the MPC (``suppress``): its count and every output that sums over it become shares of 0, and a
    0/1 flag per cell is an output; the parties learn nothing of which cells were suppressed.
    """

    n_rows: int
    k_a: int
    k_b: int
    n_groups: int
    key_owner: int = 0  # party 0 (columns a) or party 1 (columns b)
    n_levels: int = 0
    min_cell: int = 0

    def k(self, party: int) -> int:
        return self.k_a if party == 0 else self.k_b

    @property
    def n_outputs(self) -> int:
        return len(self.output_shapes())

    @property
    def n_cells(self) -> int:
        """Groups, levels and (group, level) cells, in that order."""
        g, j = self.n_groups, self.n_levels
        return g + j + g * j

    def output_shapes(self) -> list[tuple[int, ...]]:
        kl, kr = self.k(self.key_owner), self.k(1 - self.key_owner)
        g = self.n_groups
        own = [((self.k_a,),) * 3 + ((self.k_a, self.k_a),), ((self.k_b,),) * 3 + ((self.k_b, self.k_b),)]
        out = [*own[0], *own[1], (g,), (kl, kr), (g, kr), (g, kr)]
        if self.n_levels:
            out.append((g, self.n_levels))
        if self.min_cell:
            out.append((self.n_cells,))
        return out


def cell_map(spec: StatsSpec) -> list[npt.NDArray[np.int64] | None]:
    """For each output but the flags, the cell each entry sums over (-1: all rows; None: no entry is
    cell-specific). Cell ids: group ``i`` -> ``i``; level ``j`` -> ``G + j``; cell ``(i, j)`` ->
    ``G + J + i J + j``.

    Without levels only the group-by outputs are per group. With levels (the crossed layout, as the
    node expands columns) the key owner's columns are ``c G + i`` (value ``c`` times ``[key = i]``)
    and the value party's are ``j`` (``[level = j]``) then ``J + c J + j`` (value ``c`` times
    ``[level = j]``): every moment of such a column sums over one group, level or cell only.
    """
    g, nl, ko = spec.n_groups, spec.n_levels, spec.key_owner
    kl, kr = spec.k(ko), spec.k(1 - ko)
    rows = np.arange(g, dtype=np.int64)
    by_group = np.repeat(rows[:, None], kr, axis=1)
    none: list[npt.NDArray[np.int64] | None] = [None] * 8
    base = [*none, rows, None, by_group, by_group]
    if not nl:
        return base
    key_group = np.arange(kl, dtype=np.int64) % g  # column c G + i -> group i
    level = np.arange(kr, dtype=np.int64) % nl  # column j or J + c J + j -> level j

    def cell(i: npt.NDArray[np.int64], j: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return g + nl + i[:, None] * nl + j[None, :]

    own: dict[int, list[npt.NDArray[np.int64]]] = {
        ko: [key_group, key_group, key_group, np.repeat(key_group[:, None], kl, axis=1)],
        1 - ko: [g + level, g + level, g + level, np.repeat((g + level)[:, None], kr, axis=1)],
    }
    return [
        *own[0],
        *own[1],
        rows,
        cell(key_group, level),
        cell(rows, level),
        cell(rows, level),
        cell(rows, np.arange(nl, dtype=np.int64)),
    ]


def local_encode(x: Floats, frac_bits: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Ring]:
    """Owner side: (exponents e, offsets o, z encoded) with z = x/2^e - o/2^F per column."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise MpcError("columns must be a 2-D array (rows, columns)")
    std = x.std(axis=0) if x.shape[0] else np.zeros(x.shape[1])
    e = np.where(std > 0, np.ceil(np.log2(np.where(std > 0, std, 1.0))), 0).astype(np.int64)
    scaled = np.rint(np.ldexp(x, (frac_bits - e)[None, :]))
    off = np.rint(scaled.mean(axis=0)).astype(np.int64) if x.shape[0] else np.zeros(x.shape[1], np.int64)
    z = (scaled.astype(np.int64) - off[None, :]).view(np.uint64)
    return e, off, z


def joint_stats(
    ctx: PartyContext,
    spec: StatsSpec,
    columns: Floats,
    keys: npt.NDArray[np.int64] | None = None,
    levels: npt.NDArray[np.int64] | None = None,
) -> Generator[Round, Inbound, list[Ring]]:
    """One party's program; returns its shares of the outputs (order: ``StatsSpec.output_shapes``).
    The key owner gives ``keys``; with ``spec.n_levels`` the value party gives ``levels``."""
    if ctx.parties != (0, 1) or ctx.dealer_id is None:
        raise MpcError("joint_stats runs between parties 0 and 1 with a dealer")
    me, other = ctx.party, 1 - ctx.party
    n, g, nl = spec.n_rows, spec.n_groups, spec.n_levels
    columns = np.asarray(columns, dtype=np.float64)
    if columns.shape != (n, spec.k(me)):
        raise MpcError(f"party {me}: columns have shape {columns.shape}, expected {(n, spec.k(me))}")
    e, off, z = local_encode(columns, ctx.frac_bits)
    s1 = z.sum(axis=0, dtype=np.uint64)
    zc = np.ascontiguousarray(z)
    s2 = matmul_ring(np.ascontiguousarray(zc.T), zc)
    mine: list[Ring] = [fp.encode_int(e), fp.encode_int(off), s1, s2]
    is_key = me == spec.key_owner
    if is_key:
        if keys is None or keys.shape != (n,):
            raise MpcError(f"party {me}: the group key must be a vector of {n} integers")
        keys = np.asarray(keys, dtype=np.int64)
        if n and (keys.min() < 0 or keys.max() >= g):
            raise MpcError(f"party {me}: group keys must lie in [0, {g})")
        onehot = np.zeros((n, g), dtype=np.uint64)
        onehot[np.arange(n), keys] = 1
        mine.append(np.bincount(keys, minlength=g).astype(np.uint64))
        mat = np.hstack([zc, onehot])
    else:
        parts = [zc, zc * zc]
        if nl:
            if levels is None or levels.shape != (n, nl) or not np.isin(levels, (0, 1)).all():
                raise MpcError(f"party {me}: levels must be a 0/1 matrix of shape {(n, nl)}")
            parts.append(np.asarray(levels, dtype=np.uint64))
        mat = np.hstack(parts)
    shapes = spec.output_shapes()
    own_shapes = {0: shapes[0:4], 1: shapes[4:8]}
    own_shapes[spec.key_owner] = [*own_shapes[spec.key_owner], shapes[8]]
    kl, kr = spec.k(spec.key_owner), spec.k(other if is_key else me)
    maps = cell_map(spec) if spec.min_cell else []
    n_masked = sum(int((m >= 0).sum()) for m in maps if m is not None)
    wanted = [Spec.private(n, kl + g, 2 * kr + nl, spec.key_owner, 1 - spec.key_owner)]
    if spec.min_cell:
        wanted += [Spec.compare(spec.n_cells), Spec.elem(n_masked)]
    material = yield from ctx.dealer(wanted)
    pair = material[0]
    assert isinstance(pair, PrivatePair)
    shared = yield from ctx.inputs(mine, own_shapes)
    cross = yield from ctx.private_product(spec.key_owner, 1 - spec.key_owner, mat, pair)
    outs = [*shared[0][:4], *shared[1][:4], shared[spec.key_owner][4]]
    outs += [cross[:kl, :kr].copy(), cross[kl:, :kr].copy(), cross[kl:, kr : 2 * kr].copy()]
    if nl:
        outs.append(cross[kl:, 2 * kr :].copy())
    if spec.min_cell:
        outs = yield from suppress(ctx, spec, outs, maps, material[1], material[2])
    yield from ctx.finish()
    return outs


def suppress(
    ctx: PartyContext,
    spec: StatsSpec,
    outs: list[Ring],
    maps: list[npt.NDArray[np.int64] | None],
    cmp: Material,
    triple: Material,
) -> Generator[Round, Inbound, list[Ring]]:
    """Shares of ``[count >= min_cell]`` per cell (secure comparison), every cell-specific entry
    multiplied by its cell's flag (one Beaver round), the flags appended as the last output."""
    assert isinstance(cmp, CompareMaterial) and isinstance(triple, ElemTriple)
    g, nl = spec.n_groups, spec.n_levels
    counts = [outs[8]]
    if nl:
        cells = outs[12]
        counts += [cells.sum(axis=0, dtype=np.uint64), cells.reshape(-1)]
    flags = yield from geq_public(ctx, np.concatenate(counts), spec.min_cell, cmp)
    if flags.shape != (g + nl + g * nl,):
        raise MpcError("cell flags do not match the spec")
    picks = [(i, m >= 0) for i, m in enumerate(maps) if m is not None]
    values = np.concatenate([outs[i][sel] for i, sel in picks])
    which = np.concatenate([flags[maps[i][sel]] for i, sel in picks])  # type: ignore[index]
    (masked,) = yield from ctx.mul([(values, which, triple)])
    out = [o.copy() for o in outs]
    at = 0
    for i, sel in picks:
        k = int(sel.sum())
        out[i][sel] = masked[at : at + k]
        at += k
    return [*out, flags]


def finalize(spec: StatsSpec, revealed: list[Ring], frac_bits: int = fp.FRAC_BITS) -> dict[str, Any]:
    """Public post-processing of the revealed sums into the statistics (column order: a then b)."""
    if [a.shape for a in revealed] != spec.output_shapes():
        raise MpcError("revealed arrays do not match the statistics spec")
    n = spec.n_rows
    unit = float(2**frac_bits)
    parts = []
    for p in (0, 1):
        e, off, s1, s2 = (fp.to_signed(a) for a in revealed[4 * p : 4 * p + 4])
        scale = np.ldexp(1.0, e)
        sums = np.array([float(int(a) + n * int(o)) for a, o in zip(s1, off, strict=True)]) / unit * scale
        mz = s1.astype(np.float64) / unit / n
        cov_z = s2.astype(np.float64) / unit**2 / n - np.outer(mz, mz)
        parts.append((scale, off.astype(np.float64) / unit, mz, sums, cov_z))
    counts = fp.to_signed(revealed[8]).astype(np.float64)  # NaN where suppressed (min_cell)
    cross, g1, g2 = (fp.to_signed(a).astype(np.float64) for a in revealed[9:12])
    ko, vo = spec.key_owner, 1 - spec.key_owner
    cov_lr = cross / unit**2 / n - np.outer(parts[ko][2], parts[vo][2])
    cov_lr = cov_lr * np.outer(parts[ko][0], parts[vo][0])
    ka = spec.k_a
    k = spec.k_a + spec.k_b
    cov = np.zeros((k, k))
    for p, sl in ((0, slice(0, ka)), (1, slice(ka, k))):
        scale, _, _, _, cov_z = parts[p]
        cov[sl, sl] = cov_z * np.outer(scale, scale)
    ab = cov_lr if ko == 0 else cov_lr.T
    cov[:ka, ka:] = ab
    cov[ka:, :ka] = ab.T
    sums = np.concatenate([parts[0][3], parts[1][3]])
    scale_v, off_v = parts[vo][0], parts[vo][1]
    with np.errstate(invalid="ignore", divide="ignore"):
        sz = g1 / unit
        szz = g2 / unit**2
        mean_z = sz / counts[:, None]
        g_sum = (sz + counts[:, None] * off_v[None, :]) * scale_v[None, :]
        g_mean = (mean_z + off_v[None, :]) * scale_v[None, :]
        g_var = (szz / counts[:, None] - mean_z**2) * (scale_v**2)[None, :]
    result: dict[str, Any] = {
        "count": n,
        "sum": sums,
        "mean": sums / n,
        "var": np.diag(cov).copy(),
        "cov": cov,
        "groups": {
            "key_owner": ko,
            "value_party": vo,
            "count": counts,
            "sum": g_sum,
            "mean": g_mean,
            "var": g_var,
        },
    }
    if spec.n_levels:
        result["cells"] = {"count": fp.to_signed(revealed[12]).astype(np.float64)}
    if spec.min_cell:
        _blank(spec, result, fp.to_signed(revealed[-1]) == 1)
    return result


def _blank(spec: StatsSpec, result: dict[str, Any], keep: npt.NDArray[np.bool_]) -> None:
    """NaN for every statistic of a suppressed group, level or cell (their shares were zeroed)."""
    g, nl, ko, ka = spec.n_groups, spec.n_levels, spec.key_owner, spec.k_a
    maps = cell_map(spec)

    def gone(m: npt.NDArray[np.int64] | None, shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
        if m is None:
            return np.zeros(shape, dtype=bool)
        return (m >= 0) & ~keep[np.where(m >= 0, m, 0)]

    cols = np.concatenate([gone(maps[2], (spec.k_a,)), gone(maps[6], (spec.k_b,))])
    for key in ("sum", "mean", "var"):
        result[key][cols] = np.nan
    cov = result["cov"]
    cov[cols, :] = np.nan
    cov[:, cols] = np.nan
    block = gone(maps[9], (spec.k(ko), spec.k(1 - ko)))
    ab = block if ko == 0 else block.T
    cov[:ka, ka:][ab] = np.nan
    cov[ka:, :ka][ab.T] = np.nan
    groups = result["groups"]
    groups["count"][~keep[:g]] = np.nan
    per_group = gone(maps[10], groups["sum"].shape)
    for key in ("sum", "mean", "var"):
        groups[key][per_group] = np.nan
    cells = ~keep[g + nl :].reshape(g, nl)
    if nl:
        result["cells"]["count"][cells] = np.nan
    result["suppressed"] = {"min_cell": spec.min_cell, "groups": ~keep[:g], "levels": ~keep[g : g + nl]}
    result["suppressed"]["cells"] = cells
