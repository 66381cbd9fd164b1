// The browser's copy of the Python semantics that turn the two MPC parties' released output shares of a
// joint-statistics run into named statistics (confide.interfaces.mpc.fetch_mpc_result, stats path):
//
//   decodeReveal  = confide.engines.mpc.wire.decode_message for a REVEAL message (every header check)
//   reveal        = confide.engines.mpc.party.reveal (sum of every party's arrays mod 2^64)
//   finalizeStats = confide.engines.mpc.stats.finalize (+ _blank, cell_map), same float operations in
//                   the same order; the exact integer parts in BigInt; u64 words read as int64
//   namedStats    = confide.interfaces.mpc._named(stats, _columns(task, orgs, spec), spec)
//   segmentCells  = confide.interfaces.mpc.segment_table
//   statsFromShares = the whole fetch_mpc_result path after the shares are fetched (not SS-LR)
//
// Keep it in step with those modules: tests/console/test_console_mpc_kat.py runs a real MPC with the
// Python engine and checks this module's answer against the SDK's. No dependencies, no build step.

// -- constants (confide.engines.mpc.wire, confide.interfaces.mpc) ------------------------------------

const MAGIC = [0x43, 0x4d, 0x50, 0x43]; // b"CMPC"
const VERSION = 1;
const DTYPE_U64 = 1;
const SESSION_BYTES = 16;
const MAX_ARRAYS = 64;
const MAX_PAYLOAD = 1n << 36n;
const HEADER_BYTES = 40; // struct "<4sBBBB16sIHHQ"
const TAG_REVEAL = 6; // wire.Tag.REVEAL
const FRAC_BITS = 16; // fixedpoint.FRAC_BITS

/** Receiver id in the engine's reveal messages (confide.interfaces.mpc.REQUESTER / node.mpc.REQUESTER). */
export const REQUESTER = 9;

/** SHA-256 of "mpc-ss-lr/v1": confide.interfaces.mpc.MPC_LR_CODE_DIGEST (= node.mpc.MPC_LR_CODE_DIGEST). */
export const MPC_LR_CODE_DIGEST = "2085d647b9514c54c62d3eae25216afba236f9ada2aa68381a5ed86f03a8a043";

/** A protocol or post-processing failure (the engine's MpcError / MpcProtocolError). */
export class MpcError extends Error {
  constructor(message) {
    super(message);
    this.name = "MpcError";
  }
}

/** The shares do not fit together (the SDK's MpcResultInvalid). */
export class MpcResultInvalid extends Error {
  constructor(message) {
    super(message);
    this.name = "MpcResultInvalid";
  }
}

// -- small helpers -------------------------------------------------------------------------------------

/** `bytes` as a Uint8Array (a Uint8Array, another typed array / DataView, an ArrayBuffer or a hex string). */
function asBytes(bytes, what) {
  if (bytes instanceof Uint8Array) return bytes;
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (typeof bytes === "string" && /^([0-9a-fA-F]{2})*$/.test(bytes)) return fromHex(bytes);
  throw new MpcError(`${what}: not bytes`);
}

function fromHex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function sessionBytes(sessionHex) {
  if (typeof sessionHex !== "string" || !new RegExp(`^[0-9a-fA-F]{${2 * SESSION_BYTES}}$`).test(sessionHex)) {
    throw new MpcError(`session id must be ${SESSION_BYTES} bytes (${2 * SESSION_BYTES} hex digits)`);
  }
  return fromHex(sessionHex);
}

/** A shape as Python prints a tuple: (3,) or (2, 4) or (). */
function fmtShape(shape) {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
}

function sameShape(a, b) {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A ring word read as two's-complement int64, as a Number (rounded to nearest, like numpy's astype). */
function signed(word) {
  return Number(BigInt.asIntN(64, word));
}

/** The entries of a revealed array as signed Numbers: a flat list for 1-D, rows for 2-D. */
function signedArray(arr) {
  const flat = Array.from(arr.data, signed);
  if (arr.shape.length < 2) return flat;
  const [r, c] = arr.shape;
  return Array.from({ length: r }, (_, i) => flat.slice(i * c, (i + 1) * c));
}

const range = (n) => Array.from({ length: n }, (_, i) => i);
const outer = (x, y) => x.map((a) => y.map((b) => a * b));
const transpose = (m, cols) => range(cols).map((j) => m.map((row) => row[j]));

/** Python's str.rsplit(sep, 1) for a string that must contain sep: [head, tail]. */
function rsplit1(text, sep) {
  const at = text.lastIndexOf(sep);
  if (at < 0) throw new MpcResultInvalid(`${JSON.stringify(text)} has no ${JSON.stringify(sep)}`);
  return [text.slice(0, at), text.slice(at + sep.length)];
}

/** Python's round() of a float to an int: half to even. */
function pyRound(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Python's float() of a JSON value: a number, never None. */
function pyFloat(v, what) {
  if (typeof v !== "number") throw new MpcResultInvalid(`${what} is ${v === null ? "None" : typeof v}, not a number`);
  return v;
}

/** String order by code point, as Python's sorted() orders str. */
function byCodePoint(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** JSON with sorted keys, to compare two specs as Python compares dicts. */
function sortedJson(value) {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${sortedJson(value[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

// -- wire: one REVEAL message --------------------------------------------------------------------------

/**
 * Parse one party's REVEAL message (engines.mpc.wire.decode_message with the header
 * `Header(sender, receiver, session, step 0, Tag.REVEAL)`), checking magic, version, dtype, session,
 * sender -> receiver, step, tag, the number of arrays, the shape table against the payload length, and
 * that nothing is missing or trailing. Throws an MpcError naming the field.
 *
 * @param {Uint8Array} bytes the share message
 * @param {{sender: number, receiver: number, sessionHex: string, nArrays?: number|null}} expect
 * @returns {{shape: number[], data: BigUint64Array}[]} the arrays, row-major
 */
export function decodeReveal(bytes, { sender, receiver, sessionHex, nArrays = null }) {
  const where = `message from party ${sender} (step 0, REVEAL)`;
  const data = asBytes(bytes, where);
  const session = sessionBytes(sessionHex);
  if (data.length < HEADER_BYTES) {
    throw new MpcError(`${where}: truncated header (${data.length} < ${HEADER_BYTES} bytes)`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (!MAGIC.every((b, i) => data[i] === b)) {
    throw new MpcError(`${where}: bad magic ${JSON.stringify(String.fromCharCode(...data.subarray(0, 4)))}`);
  }
  const version = data[4];
  const dtype = data[5];
  const [from, to] = [data[6], data[7]];
  const step = view.getUint32(24, true);
  const tag = view.getUint16(28, true);
  const count = view.getUint16(30, true);
  const payload = view.getBigUint64(32, true);
  if (version !== VERSION) throw new MpcError(`${where}: unsupported version ${version}`);
  if (dtype !== DTYPE_U64) throw new MpcError(`${where}: unsupported dtype ${dtype}`);
  if (!session.every((b, i) => data[8 + i] === b)) throw new MpcError(`${where}: wrong session id`);
  if (from !== sender || to !== receiver) {
    throw new MpcError(`${where}: addressed ${from}->${to}, expected ${sender}->${receiver}`);
  }
  if (step !== 0) throw new MpcError(`${where}: step ${step} out of order (replayed, reordered or dropped)`);
  if (tag !== TAG_REVEAL) throw new MpcError(`${where}: unexpected tag ${tag}`);
  if (count > MAX_ARRAYS || (nArrays !== null && nArrays !== undefined && count !== nArrays)) {
    throw new MpcError(`${where}: ${count} arrays, expected ${nArrays ?? `at most ${MAX_ARRAYS}`}`);
  }
  if (payload > MAX_PAYLOAD) throw new MpcError(`${where}: payload length ${payload} too large`);
  let pos = HEADER_BYTES;
  const shapes = [];
  let total = 0n;
  for (let a = 0; a < count; a++) {
    if (pos + 1 > data.length) throw new MpcError(`${where}: truncated shape table`);
    const ndim = data[pos];
    pos += 1;
    if (ndim > 2) throw new MpcError(`${where}: array with ${ndim} dimensions`);
    if (pos + 4 * ndim > data.length) throw new MpcError(`${where}: truncated shape table`);
    const dims = range(ndim).map((d) => view.getUint32(pos + 4 * d, true));
    pos += 4 * ndim;
    shapes.push(dims);
    total += 8n * dims.reduce((p, d) => p * BigInt(d), 1n);
  }
  if (total !== payload) throw new MpcError(`${where}: shapes need ${total} payload bytes, header says ${payload}`);
  const rest = BigInt(data.length - pos);
  if (rest < payload) throw new MpcError(`${where}: truncated payload (${rest} of ${payload} bytes)`);
  if (rest > payload) throw new MpcError(`${where}: ${rest - payload} trailing bytes`);
  return shapes.map((shape) => {
    const n = shape.reduce((p, d) => p * d, 1);
    const words = new BigUint64Array(n);
    for (let i = 0; i < n; i++) words[i] = view.getBigUint64(pos + 8 * i, true);
    pos += 8 * n;
    return { shape, data: words };
  });
}

/**
 * Requester side (engines.mpc.party.reveal): decode every party's REVEAL message addressed to
 * `requester` and add the arrays up mod 2^64. Throws an MpcError for a missing or unknown party, any
 * header mismatch, truncation, or arrays whose shapes differ between the parties.
 *
 * @param {Object<number, Uint8Array>|Map<number, Uint8Array>} messagesByParty party id -> its share message
 * @param {string} sessionHex the engine's 16-byte session id, hex
 * @param {number} requester receiver id in the messages (REQUESTER)
 * @param {number[]} parties the compute parties, e.g. [0, 1]
 * @param {number|null} nArrays how many arrays each message must carry (StatsSpec.n_outputs)
 * @returns {{shape: number[], data: BigUint64Array}[]}
 */
export function reveal(messagesByParty, sessionHex, requester, parties, nArrays) {
  const messages = messagesByParty instanceof Map ? messagesByParty : new Map(Object.entries(messagesByParty));
  const has = (p) => messages.has(p) || messages.has(String(p));
  const get = (p) => (messages.has(p) ? messages.get(p) : messages.get(String(p)));
  const missing = parties.filter((p) => !has(p));
  if (missing.length) throw new MpcError(`reveal: no share from parties [${missing.join(", ")}]`);
  const extra = [...messages.keys()].filter((k) => !parties.some((p) => String(p) === String(k)));
  if (extra.length) throw new MpcError(`reveal: shares from unknown parties [${extra.join(", ")}]`);
  let total = null;
  for (const p of parties) {
    const arrays = decodeReveal(get(p), { sender: p, receiver: requester, sessionHex, nArrays });
    if (total === null) {
      total = arrays.map((a) => ({ shape: [...a.shape], data: a.data.slice() }));
      continue;
    }
    arrays.forEach((a, i) => {
      if (!sameShape(a.shape, total[i].shape)) {
        throw new MpcError(
          `reveal: party ${p} array ${i} has shape ${fmtShape(a.shape)}, expected ${fmtShape(total[i].shape)}`,
        );
      }
      const sum = total[i].data;
      for (let j = 0; j < sum.length; j++) sum[j] = BigInt.asUintN(64, sum[j] + a.data[j]);
    });
  }
  return total;
}

// -- the statistics spec (engines.mpc.stats.StatsSpec) --------------------------------------------------

const SPEC_FIELDS = { n_rows: null, k_a: null, k_b: null, n_groups: null, key_owner: 0, n_levels: 0, min_cell: 0 };

/**
 * A StatsSpec record (as a node hands it out with its share) checked and with its defaults filled in.
 * @param {{n_rows: number, k_a: number, k_b: number, n_groups: number,
 *   key_owner?: number, n_levels?: number, min_cell?: number}} record
 */
export function statsSpec(record) {
  if (record === null || typeof record !== "object") throw new MpcError("the statistics spec is not an object");
  const unknown = Object.keys(record).filter((k) => !(k in SPEC_FIELDS));
  if (unknown.length) throw new MpcError(`the statistics spec has unknown fields: ${unknown.join(", ")}`);
  const spec = {};
  for (const [k, dflt] of Object.entries(SPEC_FIELDS)) {
    const v = k in record ? record[k] : dflt;
    if (!Number.isSafeInteger(v) || v < 0) throw new MpcError(`the statistics spec's ${k} is not a count`);
    spec[k] = v;
  }
  if (spec.key_owner > 1) throw new MpcError("the statistics spec's key_owner is 0 or 1");
  return spec;
}

const kOf = (spec, party) => (party === 0 ? spec.k_a : spec.k_b);

/** StatsSpec.output_shapes: own sums of a, own sums of b, group counts, cross blocks, [cells], [flags]. */
export function outputShapes(spec) {
  const kl = kOf(spec, spec.key_owner);
  const kr = kOf(spec, 1 - spec.key_owner);
  const g = spec.n_groups;
  const own = (k) => [[k], [k], [k], [k, k]];
  const out = [...own(spec.k_a), ...own(spec.k_b), [g], [kl, kr], [g, kr], [g, kr]];
  if (spec.n_levels) out.push([g, spec.n_levels]);
  if (spec.min_cell) out.push([g + spec.n_levels + g * spec.n_levels]);
  return out;
}

/** stats.cell_map: per output but the flags, the cell each entry sums over (-1 none; null: none is). */
function cellMap(spec) {
  const g = spec.n_groups;
  const nl = spec.n_levels;
  const ko = spec.key_owner;
  const kl = kOf(spec, ko);
  const kr = kOf(spec, 1 - ko);
  const rows = range(g);
  const byGroup = rows.map((i) => Array(kr).fill(i));
  const base = [null, null, null, null, null, null, null, null, rows, null, byGroup, byGroup];
  if (!nl) return base;
  const keyGroup = range(kl).map((c) => c % g);
  const level = range(kr).map((c) => c % nl);
  const cell = (is, js) => is.map((i) => js.map((j) => g + nl + i * nl + j));
  const tier = level.map((j) => g + j);
  const own = {
    [ko]: [keyGroup, keyGroup, keyGroup, keyGroup.map((i) => Array(kl).fill(i))],
    [1 - ko]: [tier, tier, tier, tier.map((t) => Array(kr).fill(t))],
  };
  return [
    ...own[0],
    ...own[1],
    rows,
    cell(keyGroup, level),
    cell(rows, level),
    cell(rows, level),
    cell(rows, range(nl)),
  ];
}

// -- finalize ----------------------------------------------------------------------------------------------

/**
 * Public post-processing of the revealed sums into the statistics (engines.mpc.stats.finalize, with
 * _blank when min_cell > 0). Column order: party a's then party b's. Same structure as the Python
 * dict, with numbers and nested arrays; NaN where Python has NaN (suppressed or 0/0).
 *
 * @param {object} spec a StatsSpec record (see statsSpec)
 * @param {{shape: number[], data: BigUint64Array}[]} revealed the output of reveal()
 * @returns {{count: number, sum: number[], mean: number[], var: number[], cov: number[][],
 *   groups: {key_owner: number, value_party: number, count: number[],
 *     sum: number[][], mean: number[][], var: number[][]},
 *   cells?: {count: number[][]},
 *   suppressed?: {min_cell: number, groups: boolean[], levels: boolean[], cells: boolean[][]}}}
 */
export function finalizeStats(spec, revealed) {
  spec = statsSpec(spec);
  const shapes = outputShapes(spec);
  if (revealed.length !== shapes.length || !revealed.every((a, i) => sameShape(a.shape, shapes[i]))) {
    throw new MpcError("revealed arrays do not match the statistics spec");
  }
  const n = spec.n_rows;
  const unit = 2 ** FRAC_BITS;
  const unit2 = unit ** 2;
  const parts = [0, 1].map((p) => {
    const [eArr, offArr, s1Arr, s2Arr] = revealed.slice(4 * p, 4 * p + 4);
    const e = signedArray(eArr);
    const off = signedArray(offArr);
    const s1 = signedArray(s1Arr);
    const s2 = signedArray(s2Arr);
    const scale = e.map((x) => 2 ** x); // np.ldexp(1.0, e)
    // float(int(a) + n * int(o)) / unit * scale: the integer part exactly, then one rounding
    const sums = range(s1.length).map((c) => {
      const exact = BigInt.asIntN(64, s1Arr.data[c]) + BigInt(n) * BigInt.asIntN(64, offArr.data[c]);
      return (Number(exact) / unit) * scale[c];
    });
    const mz = s1.map((x) => x / unit / n);
    const covZ = s2.map((row, i) => row.map((x, j) => x / unit2 / n - mz[i] * mz[j]));
    return { scale, off: off.map((x) => x / unit), mz, sums, covZ };
  });
  const counts = signedArray(revealed[8]); // NaN where suppressed (min_cell), set below
  const [cross, g1, g2] = revealed.slice(9, 12).map(signedArray);
  const ko = spec.key_owner;
  const vo = 1 - ko;
  const scaleLr = outer(parts[ko].scale, parts[vo].scale);
  const covLr = cross.map((row, i) =>
    row.map((x, j) => (x / unit2 / n - parts[ko].mz[i] * parts[vo].mz[j]) * scaleLr[i][j]),
  );
  const ka = spec.k_a;
  const k = spec.k_a + spec.k_b;
  const cov = range(k).map(() => Array(k).fill(0));
  [
    [0, 0],
    [1, ka],
  ].forEach(([p, at]) => {
    const { scale, covZ } = parts[p];
    const ss = outer(scale, scale);
    covZ.forEach((row, i) => row.forEach((x, j) => (cov[at + i][at + j] = x * ss[i][j])));
  });
  const ab = ko === 0 ? covLr : transpose(covLr, kOf(spec, vo)); // k_a x k_b
  ab.forEach((row, i) =>
    row.forEach((x, j) => {
      cov[i][ka + j] = x;
      cov[ka + j][i] = x;
    }),
  );
  const sums = [...parts[0].sums, ...parts[1].sums];
  const scaleV = parts[vo].scale;
  const offV = parts[vo].off;
  const gSum = [];
  const gMean = [];
  const gVar = [];
  g1.forEach((row, i) => {
    const c = counts[i];
    gSum.push([]);
    gMean.push([]);
    gVar.push([]);
    row.forEach((x, j) => {
      const sz = x / unit;
      const szz = g2[i][j] / unit2;
      const meanZ = sz / c;
      gSum[i].push((sz + c * offV[j]) * scaleV[j]);
      gMean[i].push((meanZ + offV[j]) * scaleV[j]);
      gVar[i].push((szz / c - meanZ * meanZ) * (scaleV[j] * scaleV[j]));
    });
  });
  const result = {
    count: n,
    sum: sums,
    mean: sums.map((s) => s / n),
    var: range(k).map((i) => cov[i][i]),
    cov,
    groups: { key_owner: ko, value_party: vo, count: counts, sum: gSum, mean: gMean, var: gVar },
  };
  if (spec.n_levels) result.cells = { count: signedArray(revealed[12]) };
  if (spec.min_cell) {
    const flags = revealed[revealed.length - 1].data;
    blank(spec, result, Array.from(flags, (w) => BigInt.asIntN(64, w) === 1n)); // to_signed(flags) == 1
  }
  return result;
}

/** stats._blank: NaN for every statistic of a suppressed group, level or cell (their shares were zeroed). */
function blank(spec, result, keep) {
  const g = spec.n_groups;
  const nl = spec.n_levels;
  const ko = spec.key_owner;
  const ka = spec.k_a;
  const maps = cellMap(spec);
  // gone(m): true where the entry sums over a cell that is not kept; all false for m === null
  const goneOf = (m) => (m >= 0 ? !keep[m] : false);
  const gone = (m, shape) => {
    if (m === null) {
      return shape.length === 1 ? Array(shape[0]).fill(false) : range(shape[0]).map(() => Array(shape[1]).fill(false));
    }
    return m.map((x) => (Array.isArray(x) ? x.map(goneOf) : goneOf(x)));
  };
  const cols = [...gone(maps[2], [spec.k_a]), ...gone(maps[6], [spec.k_b])];
  for (const key of ["sum", "mean", "var"]) cols.forEach((c, i) => c && (result[key][i] = NaN));
  const cov = result.cov;
  cols.forEach((c, i) => {
    if (!c) return;
    cov[i].fill(NaN);
    cov.forEach((row) => (row[i] = NaN));
  });
  const kl = kOf(spec, ko);
  const kr = kOf(spec, 1 - ko);
  const block = gone(maps[9], [kl, kr]);
  const ab = ko === 0 ? block : transpose(block, kr); // k_a x k_b
  ab.forEach((row, i) =>
    row.forEach((x, j) => {
      if (!x) return;
      cov[i][ka + j] = NaN;
      cov[ka + j][i] = NaN;
    }),
  );
  const groups = result.groups;
  range(g).forEach((i) => !keep[i] && (groups.count[i] = NaN));
  const perGroup = gone(maps[10], [g, kr]);
  for (const key of ["sum", "mean", "var"]) {
    perGroup.forEach((row, i) => row.forEach((x, j) => x && (groups[key][i][j] = NaN)));
  }
  const cells = range(g).map((i) => range(nl).map((j) => !keep[g + nl + i * nl + j]));
  if (nl) cells.forEach((row, i) => row.forEach((x, j) => x && (result.cells.count[i][j] = NaN)));
  result.suppressed = {
    min_cell: spec.min_cell,
    groups: range(g).map((i) => !keep[i]),
    levels: range(nl).map((j) => !keep[g + j]),
    cells,
  };
}

// -- names (interfaces.mpc._columns, _named) --------------------------------------------------------------

/**
 * Value column names in the engine's order (interfaces.mpc._columns): party 0 (the requester's org)
 * then party 1; crossed tasks expand them as the nodes do (v*[key=i], [cross=j], v*[cross=j]).
 * @param {object} task the task record from the ledger
 * @param {string[]} orgs the org of each of the task's inputs, in the task's input order
 * @param {object} spec a StatsSpec record
 * @returns {string[]}
 */
export function columnNames(task, orgs, spec) {
  const first = orgs.indexOf(task.requester_org);
  if (first < 0) throw new MpcResultInvalid(`the requester's org ${task.requester_org} holds none of the inputs`);
  const ordered = [task.inputs[first], task.inputs[1 - first]];
  const params = task.params ?? {};
  const gk = params.group_key ?? null;
  const ck = params.cross_key ?? null;
  const names = [];
  for (const inp of ordered) {
    const ds = inp.dataset;
    const cols = inp.columns
      .slice(1)
      .map((c) => `${ds}:${c}`)
      .filter((c) => c !== gk && c !== ck);
    if (ck === null) {
      names.push(...cols);
    } else if (gk !== null && gk.startsWith(`${ds}:`)) {
      const gname = rsplit1(gk, ":")[1]; // key owner: v * [key = i]
      for (const c of cols) for (let i = 0; i < spec.n_groups; i++) names.push(`${c}*[${gname}=${i}]`);
    } else {
      const nCross = Math.trunc(Number(params.n_cross)); // the other party: [cross = j], then v * [cross = j]
      const cname = rsplit1(ck, ":")[1];
      for (let j = 0; j < nCross; j++) names.push(`${ds}:[${cname}=${j}]`);
      for (const c of cols) for (let j = 0; j < nCross; j++) names.push(`${c}*[${cname}=${j}]`);
    }
  }
  if (names.length !== spec.k_a + spec.k_b) {
    throw new MpcResultInvalid("the task's columns do not match the statistics spec");
  }
  return names;
}

/** interfaces.mpc._num: a float for JSON; null where the statistic was suppressed (NaN). */
function num(v) {
  return Number.isNaN(v) ? null : v;
}

/** interfaces.mpc._nums on a (nested) array. */
function nums(a) {
  return Array.isArray(a) ? a.map(nums) : num(a);
}

/** `int(c)` of a count that may be null. */
const countOf = (c) => (c === null ? null : Math.trunc(c));

/**
 * The statistics by column name (interfaces.mpc._named(stats, _columns(task, orgs, spec), spec)).
 * @param {ReturnType<typeof finalizeStats>} stats
 * @param {object} task the task record
 * @param {string[]} orgs the org of each task input, in input order
 * @param {object} spec a StatsSpec record
 * @returns {NamedStats}
 *
 * @typedef {{count: number, columns: string[], sum: Object<string, number|null>, mean: Object<string, number|null>,
 *   var: Object<string, number|null>, cov: Object<string, Object<string, number|null>>,
 *   groups: {key_owner: number, value_party: number, columns: string[], count: (number|null)[],
 *     sum: (number|null)[][], mean: (number|null)[][], var: (number|null)[][]},
 *   cells?: {count: (number|null)[][]},
 *   suppressed?: {min_cell: number, groups: boolean[], levels: boolean[], cells: boolean[][]}}} NamedStats
 */
export function namedStats(stats, task, orgs, spec) {
  spec = statsSpec(spec);
  const names = columnNames(task, orgs, spec);
  const vec = (a) => {
    if (a.length !== names.length) throw new MpcResultInvalid("a statistic does not match the columns");
    return Object.fromEntries(names.map((name, i) => [name, num(a[i])]));
  };
  const rowOf = (row) => Object.fromEntries(names.map((b, j) => [b, num(row[j])]));
  const g = stats.groups;
  const valueNames = spec.key_owner === 0 ? names.slice(spec.k_a) : names.slice(0, spec.k_a);
  const out = {
    count: Math.trunc(stats.count),
    columns: names,
    sum: vec(stats.sum),
    mean: vec(stats.mean),
    var: vec(stats.var),
    cov: Object.fromEntries(names.map((a, i) => [a, rowOf(stats.cov[i])])),
    groups: {
      key_owner: Math.trunc(g.key_owner),
      value_party: Math.trunc(g.value_party),
      columns: valueNames,
      count: nums(g.count).map(countOf),
      sum: nums(g.sum),
      mean: nums(g.mean),
      var: nums(g.var),
    },
  };
  if (stats.cells) out.cells = { count: nums(stats.cells.count).map((row) => row.map(countOf)) };
  if (stats.suppressed) {
    const sup = stats.suppressed;
    out.suppressed = {
      min_cell: Math.trunc(sup.min_cell),
      groups: sup.groups.map(Boolean),
      levels: sup.levels.map(Boolean),
      cells: sup.cells.map((row) => row.map(Boolean)),
    };
  }
  return out;
}

// -- segments (interfaces.mpc.segment_table) ---------------------------------------------------------------

/**
 * Cells (group i of the group key, level j of the cross key) of a crossed joint-statistics result
 * (interfaces.mpc.segment_table): `count` and, for every value column of either party (by its bare
 * column name), `{sum, mean}` over the cell; a cell below the minimum cell size is
 * `{<gk>: i, <ck>: j, count: null, suppressed: true}`. Order: i then j.
 * @param {NamedStats} named the output of namedStats / statsFromShares
 * @param {object} task the task record (params.group_key, cross_key, n_groups, n_cross)
 * @returns {object[]}
 */
export function segmentCells(named, task) {
  const params = task.params;
  const gk = rsplit1(String(params.group_key), ":")[1];
  const ck = rsplit1(String(params.cross_key), ":")[1];
  const nGroups = Math.trunc(Number(params.n_groups));
  const nCross = Math.trunc(Number(params.n_cross));
  const n = Math.trunc(named.count);
  const g = named.groups;
  const gcols = [...g.columns];
  const keyCols = named.columns.filter((c) => c.endsWith(`*[${gk}=0]`));
  const bases = gcols.filter((c) => c.includes("*[")).map((c) => rsplit1(c, "*[")[0]);
  const otherCols = [...new Set(bases)].sort(byCodePoint);
  const counts = named.cells?.count ?? null;
  const small = named.suppressed?.cells ?? null;
  const indexOf = (c) => {
    const at = gcols.indexOf(c);
    if (at < 0) throw new MpcResultInvalid(`no column ${c} in the group-by result`);
    return at;
  };
  const cells = [];
  for (let i = 0; i < nGroups; i++) {
    for (let j = 0; j < nCross; j++) {
      if (small !== null && small[i][j]) {
        // below the minimum cell size: nothing but the flag
        cells.push({ [gk]: i, [ck]: j, count: null, suppressed: true });
        continue;
      }
      const ind = gcols.find((c) => c.endsWith(`:[${ck}=${j}]`));
      if (ind === undefined) throw new MpcResultInvalid(`no indicator column [${ck}=${j}] in the result`);
      const count = counts !== null ? counts[i][j] : pyRound(pyFloat(g.sum[i][indexOf(ind)], "a cell count"));
      const cell = { [gk]: i, [ck]: j, count };
      for (const c of otherCols) {
        const total = pyFloat(g.sum[i][indexOf(`${c}*[${ck}=${j}]`)], `the sum of ${c} in cell (${i}, ${j})`);
        cell[rsplit1(c, ":")[1]] = { sum: total, mean: count ? total / count : null };
      }
      for (const c0 of keyCols) {
        const c = rsplit1(c0, "*[")[0];
        const a = `${c}*[${gk}=${i}]`;
        const cov = pyFloat(named.cov[a]?.[ind], `cov(${a}, ${ind})`);
        const ma = pyFloat(named.mean[a], `the mean of ${a}`);
        const mi = pyFloat(named.mean[ind], `the mean of ${ind}`);
        const total = n * (cov + ma * mi);
        cell[rsplit1(c, ":")[1]] = { sum: total, mean: count ? total / count : null };
      }
      cells.push(cell);
    }
  }
  return cells;
}

// -- the whole path ----------------------------------------------------------------------------------------

/**
 * The stats path of interfaces.mpc.fetch_mpc_result once both parties' shares are in hand (opened from
 * their release boxes): check the answers belong to one session and one spec, reveal (sum mod 2^64,
 * every header checked), finalize, and name the statistics. The commitment check against the run's
 * output_digest is the caller's (it needs each org's share digest: see the release box).
 *
 * @param {{party: number, session: string, spec: object, share: Uint8Array|string}[]} answers one per
 *   party: its party id (0 or 1), the engine session id (hex, as the node answers it), the run's
 *   StatsSpec record and its share message (bytes, or hex)
 * @param {object} task the task record from the ledger (code_digest, requester_org, inputs, params)
 * @param {string[]} orgs the org of each of the task's inputs, in the task's input order
 * @returns {NamedStats} the same object as the SDK's fetch_mpc_result (NaN as null)
 */
export function statsFromShares(answers, task, orgs) {
  if (task.code_digest === MPC_LR_CODE_DIGEST) {
    throw new MpcResultInvalid("this is an SS-LR task (mpc-ss-lr/v1): its shares are scores, not statistics");
  }
  if (!Array.isArray(answers) || answers.length === 0) throw new MpcResultInvalid("no shares");
  const sessions = new Set(answers.map((a) => String(a.session).toLowerCase()));
  const specs = answers.map((a) => sortedJson(a.spec));
  if (sessions.size !== 1 || specs.some((s) => s !== specs[0])) {
    throw new MpcResultInvalid("the parties' shares belong to different sessions or specs");
  }
  const byParty = new Map(answers.map((a) => [Math.trunc(Number(a.party)), a.share]));
  const [session] = sessions;
  let spec;
  let stats;
  try {
    spec = statsSpec(answers[0].spec);
    const revealed = reveal(byParty, session, REQUESTER, [0, 1], outputShapes(spec).length);
    stats = finalizeStats(spec, revealed);
  } catch (exc) {
    if (exc instanceof MpcError) throw new MpcResultInvalid(`the shares do not reveal: ${exc.message}`);
    throw exc;
  }
  return namedStats(stats, task, orgs, spec);
}
