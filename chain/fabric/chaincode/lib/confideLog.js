"use strict";
// ConfideLog for Hyperledger Fabric: the same append-only log as chain/evm/ConfideLog.sol.
// The chain orders and keeps the bytes; every Confide node replays them through the platform
// contract (a Python state machine), which verifies each signature and decides. This chaincode
// interprets nothing: it numbers each appended signed transaction, keeps it under its number and
// emits one "Appended" chaincode event per Fabric transaction (Fabric keeps only the last event a
// transaction sets, so a batch is one event: {first, count, time, entries}).

const { Contract } = require("fabric-contract-api");

const MAX_BATCH = 10000;
const MAX_ENTRY_BYTES = 1 << 20;
const SEQ_DIGITS = 16;

function seqKey(n) {
  return "entry/" + String(n).padStart(SEQ_DIGITS, "0");
}

function decodeBatch(txsJson) {
  let list;
  try {
    list = JSON.parse(txsJson);
  } catch (e) {
    throw new Error("Append takes a JSON array of base64 strings (signed Confide txs)");
  }
  if (!Array.isArray(list) || list.length === 0) throw new Error("Append takes a non-empty JSON array");
  if (list.length > MAX_BATCH) throw new Error(`at most ${MAX_BATCH} entries per batch`);
  return list.map((b64, i) => {
    if (typeof b64 !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
      throw new Error(`entry ${i} is not base64`);
    }
    const raw = Buffer.from(b64, "base64");
    if (raw.length === 0 || raw.length > MAX_ENTRY_BYTES) throw new Error(`entry ${i}: 1 to ${MAX_ENTRY_BYTES} bytes`);
    return raw;
  });
}

// The transaction's time (ms): the proposal's channel-header timestamp, the same on every endorser.
// It becomes the batch's time, as the appender's clock stamps an etcd batch.
function txTimeMs(ctx) {
  const ts = ctx.stub.getTxTimestamp();
  return Number(ts.seconds.toString()) * 1000 + Math.floor(ts.nanos / 1e6);
}

class ConfideLog extends Contract {
  constructor() {
    super("ConfideLog");
  }

  // Bind the log to one consortium (its tag, hex of 32 bytes); once.
  async Init(ctx, tagHex) {
    if (!/^[0-9a-f]{64}$/.test(tagHex)) throw new Error("the tag is 32 bytes, lower-case hex");
    const existing = await ctx.stub.getState("tag");
    if (existing && existing.length) throw new Error("the log is already bound to a consortium");
    await ctx.stub.putState("tag", Buffer.from(tagHex));
    await ctx.stub.putState("count", Buffer.from("0"));
  }

  async Tag(ctx) {
    const tag = await ctx.stub.getState("tag");
    if (!tag || !tag.length) throw new Error("the log is not initialized (Init)");
    return tag.toString();
  }

  async Count(ctx) {
    const c = await ctx.stub.getState("count");
    return c && c.length ? Number(c.toString()) : 0;
  }

  // Append a batch of signed Confide transactions, in order; returns the first number.
  async Append(ctx, txsJson) {
    await this.Tag(ctx);
    const entries = decodeBatch(txsJson);
    const first = await this.Count(ctx);
    for (let i = 0; i < entries.length; i++) await ctx.stub.putState(seqKey(first + i), entries[i]);
    await ctx.stub.putState("count", Buffer.from(String(first + entries.length)));
    const event = { first, count: entries.length, time: txTimeMs(ctx), entries: entries.map((e) => e.toString("base64")) };
    ctx.stub.setEvent("Appended", Buffer.from(JSON.stringify(event)));
    return first;
  }

  // Entries from..from+limit-1 (base64), in order: for a reader that missed events.
  async Entries(ctx, from, limit) {
    const start = Number(from);
    const n = Math.min(Number(limit), MAX_BATCH);
    if (!Number.isInteger(start) || start < 0 || !Number.isInteger(n) || n < 1) throw new Error("from >= 0, limit >= 1");
    const out = [];
    const it = await ctx.stub.getStateByRange(seqKey(start), seqKey(start + n));
    for (let r = await it.next(); !r.done; r = await it.next()) out.push(Buffer.from(r.value.value).toString("base64"));
    await it.close();
    return JSON.stringify(out);
  }
}

module.exports = { ConfideLog, decodeBatch, seqKey };
