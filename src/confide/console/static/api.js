// The node's API as the browser calls it: every request signed with the user's key (the RFC 9421
// profile of confide.crypto.httpsig), every ledger transaction built and signed here (the body of
// confide.ledger.tx: RFC 8785 canonical JSON, Ed25519 over "confide-tx-v1\0" + body).
// The private key never leaves this tab: it is a non-extractable WebCrypto key (keys.js).

const enc = new TextEncoder();
export const TX_DOMAIN = enc.encode("confide-tx-v1\u0000");
const COVERED = '("@method" "@path" "@query" "content-digest")';

/** An error the API answered: {code, message, status, details}; never a stack trace. */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function unhex(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error("not hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function b64(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function randomHex(n) {
  return hex(crypto.getRandomValues(new Uint8Array(n)));
}

/** RFC 8785 for Confide's signed subset: keys sorted by UTF-16 code units (JS's own string order),
 * no whitespace, integers only (|n| <= 2^53-1), JSON.stringify's minimal escaping. */
export function canonical(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error(`not a safe integer: ${value}`);
    return String(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (typeof value === "object") {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  throw new Error(`cannot sign a ${typeof value}`);
}

/** The signature base of confide.crypto.httpsig._base (one line per covered component). */
export function signatureBase(method, path, query, digest, params) {
  return [
    `"@method": ${method.toUpperCase()}`,
    `"@path": ${path}`,
    `"@query": ?${query}`,
    `"content-digest": ${digest}`,
    `"@signature-params": ${params}`,
  ].join("\n");
}

/** A client for this page's node, signing as `session` ({keyId, signKey}); null = anonymous. */
export class Api {
  constructor(session, base = "") {
    this.session = session;
    this.base = base;
    this.chain = null;
    this.lastHeight = -1;
  }

  async headers(method, path, query, body, created = Math.floor(Date.now() / 1000)) {
    const digest = "sha-256=:" + b64(await sha256(body)) + ":";
    const params =
      `${COVERED};created=${created};nonce="${randomHex(16)}";` +
      `keyid="${this.session.keyId}";alg="ed25519"`;
    const base = enc.encode(signatureBase(method, path, query, digest, params));
    const sig = await crypto.subtle.sign("Ed25519", this.session.signKey, base);
    return {
      "Content-Digest": digest,
      "Signature-Input": `sig1=${params}`,
      Signature: `sig1=:${b64(sig)}:`,
    };
  }

  /** Call the API; resolves to the JSON answer, rejects with ApiError. */
  async call(method, path, { body, params } = {}) {
    const query = params ? new URLSearchParams(params).toString() : "";
    const bytes = body === undefined ? new Uint8Array() : enc.encode(JSON.stringify(body));
    const headers = this.session ? await this.headers(method, path, query, bytes) : {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(this.base + encodeURI(path) + (query ? "?" + query : ""), {
        method,
        headers,
        body: body === undefined ? undefined : bytes,
        cache: "no-store",
      });
    } catch (exc) {
      throw new ApiError(0, "UNREACHABLE", `the node did not answer (${exc.message})`);
    }
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!resp.ok) {
      const e = (data && data.error) || {};
      throw new ApiError(resp.status, e.code || `HTTP_${resp.status}`, e.message || text.slice(0, 300), e.details || {});
    }
    return data;
  }

  /** A contract query; filters go in the query string: query("applications?status=approved"). */
  query(path) {
    const [p, qs] = path.split("?", 2);
    const params = Object.fromEntries(new URLSearchParams(qs || ""));
    if (this.lastHeight >= 0) params.min_height = String(this.lastHeight);
    return this.call("GET", `/v1/query/${p}`, { params });
  }

  async queryOrNull(path) {
    try {
      return await this.query(path);
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) return null;
      throw exc;
    }
  }

  async chainId() {
    if (!this.chain) this.chain = (await this.call("GET", "/v1/status")).chain_id;
    return this.chain;
  }

  /** Build, sign and relay a ledger transaction; resolves when this node applied it. */
  async submit(type, payload) {
    const body = canonical({
      chain: await this.chainId(),
      type,
      payload,
      signer: this.session.keyId,
      nonce: randomHex(16),
      created_at: Date.now(),
    });
    const sig = await crypto.subtle.sign("Ed25519", this.session.signKey, concat(TX_DOMAIN, enc.encode(body)));
    const receipt = await this.call("POST", "/v1/txs", { body: { body, sig: hex(sig) } });
    this.lastHeight = Math.max(this.lastHeight, receipt.height);
    return receipt;
  }
}
