// A tee run driven from the browser, as confide.interfaces.tee.run_tee_task does it: the node hosts
// and quotes the enclave, the user signs run.start (naming the attestation) and run.finish (carrying
// the enclave's signed statement). And the released result, opened with the user's recipient key
// (confide.engines.tee.wire.open_release: X25519 + HKDF-SHA256 + AES-256-GCM, digest checked).

import { ApiError, canonical, concat, hex, sha256, unhex } from "./api.js";

const enc = new TextEncoder();
const RELEASE_MAGIC = new Uint8Array([0x43, 0x46, 0x52, 0x4c, 0x01]); // "CFRL\x01"
const RELEASE_LABEL = enc.encode("confide/tee/release/v1\u0000");

/** The latest dataset version each input's grant covers (ledger.contract.tasks.run_input_digests). */
export async function inputDigests(api, task) {
  const out = [];
  for (const inp of task.inputs) {
    const grant = await api.query(`application/${inp.grant}`);
    let versions = (await api.query(`dataset/${inp.dataset}`)).versions;
    if (grant.versions !== "latest") versions = versions.filter((v) => grant.versions.includes(v.version));
    out.push(versions[versions.length - 1].content_digest);
  }
  return out;
}

/** Run a tee task now; `say(step, detail)` reports progress. Resolves to {run, statement}. */
export async function runTee(api, task, say) {
  const digests = await inputDigests(api, task);
  say("quote");
  const session = await api.call("POST", "/v1/tee/sessions", { body: { task: task.id, min_height: api.lastHeight } });
  let start;
  try {
    say("start");
    start = await api.submit("run.start", { task: task.id, input_digests: digests, attestation: session.attestation });
  } catch (exc) {
    api.call("DELETE", `/v1/tee/sessions/${session.session}`).catch(() => {});
    throw exc;
  }
  const run = start.tx_id;
  let done = false;
  const poll = (async () => {
    while (!done) {
      await new Promise((r) => setTimeout(r, 700));
      if (done) break;
      try {
        const p = await api.call("GET", `/v1/tee/sessions/${session.session}`);
        const detail = Object.entries(p.inputs)
          .map(([d, v]) => `${d}: ${v.frames} frames, ${(v.bytes / 1e6).toFixed(1)} MB${v.done ? " ✓" : ""}`)
          .join("; ");
        say("inputs", detail || p.state);
      } catch {
        /* the session ends when the run does */
      }
    }
  })();
  let out;
  try {
    out = await api.call("POST", `/v1/tee/sessions/${session.session}/run`, { body: { run, min_height: start.height } });
  } catch (exc) {
    done = true;
    const reason = exc instanceof ApiError ? `${exc.code}: ${exc.message}` : String(exc.message);
    await api.submit("run.finish", { run, status: "failed", output_digest: null, reason: reason.slice(0, 2000) }).catch(() => {});
    exc.run = run;
    throw exc;
  }
  done = true;
  await poll;
  say("finish");
  const st = out.statement;
  await api.submit("run.finish", {
    run,
    status: "succeeded",
    output_digest: st.output_digest,
    reason: "",
    statement: st,
    signature: out.signature,
  });
  return { run, statement: st };
}

/** Fetch a released tee result and open it: Arrow IPC bytes, checked against the ledger's digest. */
export async function fetchResult(api, session, runId) {
  const run = await api.query(`run/${runId}`);
  const { box } = await api.call("POST", `/v1/tee/releases/${runId}`, { body: { min_height: api.lastHeight } });
  return openBox(session, box, run.task, run.output_digest);
}

/** Open a release box (engines.tee.wire.box_for_requester) addressed to `session`'s recipient key,
 * bound to the task and the digest of its content; resolves to the content, digest checked. */
export async function openBox(session, boxHex, taskId, digestHex) {
  const bytes = unhex(boxHex);
  const headLen = RELEASE_MAGIC.length + 32;
  if (bytes.length < headLen + 16 || !RELEASE_MAGIC.every((b, i) => bytes[i] === b)) throw new Error("not a release box");
  const head = bytes.slice(0, headLen);
  const eph = await crypto.subtle.importKey("raw", head.slice(RELEASE_MAGIC.length), { name: "X25519" }, false, []);
  const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: eph }, session.recipientKey, 256));
  const digest = unhex(digestHex);
  const aad = enc.encode(canonical({ output_digest: digestHex, task_id: taskId }));
  const info = concat(RELEASE_LABEL, unhex(session.recipientPublic), aad);
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  const okm = new Uint8Array(await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: digest, info }, ikm, 44 * 8));
  const key = await crypto.subtle.importKey("raw", okm.slice(0, 32), "AES-GCM", false, ["decrypt"]);
  let data;
  try {
    data = new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-GCM", iv: okm.slice(32, 44), additionalData: head }, key, bytes.slice(headLen)),
    );
  } catch {
    throw new Error("the release box does not open with your key");
  }
  if (hex(await sha256(data)) !== digestHex) throw new Error("the released output does not match its digest on the ledger");
  return data;
}

/** Decode Arrow IPC bytes (vendor/arrow.js): {columns, rows, metrics}. */
export function decodeTable(bytes) {
  if (!window.Arrow) throw new Error("vendor/arrow.js is missing (run: make console)");
  const table = window.Arrow.tableFromIPC(bytes);
  const columns = table.schema.fields.map((f) => f.name);
  const rows = table.toArray().map((r) => {
    const o = {};
    for (const c of columns) {
      const v = r[c];
      o[c] = typeof v === "bigint" ? Number(v) : v;
    }
    return o;
  });
  const meta = table.schema.metadata.get("confide.metrics");
  return { columns, rows, metrics: meta ? JSON.parse(meta) : {} };
}
