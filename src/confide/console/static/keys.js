// Signing in: the user's own key, from the PEM file the CLI and `confide org add-member` write.
// The key is imported as a non-extractable WebCrypto key and kept in this browser's IndexedDB for
// the session (until "sign out"); the PEM text itself is not stored. Also derived once here: the
// X25519 key tee results are encrypted to (confide.interfaces.tee.recipient_key: HKDF-SHA256 over
// the PKCS#8 PEM, salt "confide/tee/recipient/v1").

import { concat, hex, sha256, unhex } from "./api.js";

const enc = new TextEncoder();
const RECIPIENT_SALT = enc.encode("confide/tee/recipient/v1");
const X25519_PKCS8_PREFIX = unhex("302e020100300506032b656e04220420");
const DB = "confide-console";

function b64urlToBytes(text) {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function pemBody(pem) {
  const m = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/.exec(pem);
  if (!m) throw new KeyError("not_pem");
  return m[1].replace(/\s+/g, "");
}

/** Why a key could not be used; `code` is translated by the page. */
export class KeyError extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

/** The PEM exactly as the Python side writes it (PKCS#8, 64-column base64): the HKDF input. */
function canonicalPem(b64body) {
  const lines = b64body.match(/.{1,64}/g) || [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join("\n")}\n-----END PRIVATE KEY-----\n`;
}

/** Import a PEM private key: {keyId, publicHex, signKey, recipientKey, recipientPublic}. */
export async function importPem(pem) {
  const body = pemBody(pem);
  let der;
  try {
    der = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  } catch {
    throw new KeyError("not_pem");
  }
  let jwk;
  try {
    const k = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
    jwk = await crypto.subtle.exportKey("jwk", k);
  } catch {
    throw new KeyError("not_ed25519");
  }
  const publicRaw = b64urlToBytes(jwk.x);
  const signKey = await crypto.subtle.importKey("jwk", jwk, { name: "Ed25519" }, false, ["sign"]);
  const ikm = await crypto.subtle.importKey("raw", enc.encode(canonicalPem(body)), "HKDF", false, ["deriveBits"]);
  const seed = new Uint8Array(
    await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: RECIPIENT_SALT, info: new Uint8Array() }, ikm, 256),
  );
  const xpkcs8 = concat(X25519_PKCS8_PREFIX, seed);
  const xfull = await crypto.subtle.importKey("pkcs8", xpkcs8, { name: "X25519" }, true, ["deriveBits"]);
  const xjwk = await crypto.subtle.exportKey("jwk", xfull);
  const recipientKey = await crypto.subtle.importKey("pkcs8", xpkcs8, { name: "X25519" }, false, ["deriveBits"]);
  seed.fill(0);
  return {
    keyId: hex(await sha256(publicRaw)),
    publicHex: hex(publicRaw),
    signKey,
    recipientKey,
    recipientPublic: hex(b64urlToBytes(xjwk.x)),
  };
}

function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore("session");
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction("session", mode);
    const req = fn(t.objectStore("session"));
    t.oncomplete = () => resolve(req && req.result);
    t.onerror = () => reject(t.error);
  });
}

/** Keep the signed-in session for this node (origin) until sign-out. */
export function saveSession(session) {
  return tx("readwrite", (s) => s.put(session, "current"));
}

export async function loadSession() {
  try {
    return (await tx("readonly", (s) => s.get("current"))) || null;
  } catch {
    return null;
  }
}

export function clearSession() {
  return tx("readwrite", (s) => s.delete("current"));
}
