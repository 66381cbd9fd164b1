"use strict";
// Unit tests of the chaincode with an in-memory stub (the shape of fabric-shim's ChaincodeStub
// that the contract uses): numbering, state, the one event per transaction, refusals.
const test = require("node:test");
const assert = require("node:assert/strict");
const { ConfideLog } = require("../lib/confideLog");

function ctx() {
  const state = new Map();
  const events = [];
  const stub = {
    async getState(k) { return state.has(k) ? Buffer.from(state.get(k)) : Buffer.alloc(0); },
    async putState(k, v) { state.set(k, Buffer.from(v)); },
    getTxTimestamp() { return { seconds: { toString: () => "1700000000" }, nanos: 123456789 }; },
    setEvent(name, payload) { events.push({ name, payload: JSON.parse(Buffer.from(payload).toString()) }); },
    async getStateByRange(a, b) {
      const keys = [...state.keys()].filter((k) => k >= a && k < b).sort();
      let i = 0;
      return {
        async next() { return i < keys.length ? { done: false, value: { key: keys[i], value: state.get(keys[i++]) } } : { done: true }; },
        async close() {},
      };
    },
  };
  return { stub, state, events };
}

const TAG = "ab".repeat(32);
const b64 = (s) => Buffer.from(s).toString("base64");

test("batches are numbered in order, kept, and emitted as one event", async () => {
  const c = ctx();
  const log = new ConfideLog();
  await log.Init(c, TAG);
  assert.equal(await log.Append(c, JSON.stringify([b64("tx-0"), b64("tx-1"), b64("tx-2")])), 0);
  assert.equal(await log.Append(c, JSON.stringify([b64("tx-3")])), 3);
  assert.equal(await log.Count(c), 4);
  assert.deepEqual(JSON.parse(await log.Entries(c, "1", "2")), [b64("tx-1"), b64("tx-2")]);
  assert.equal(c.events.length, 2);
  assert.deepEqual(c.events[0], { name: "Appended", payload: { first: 0, count: 3, time: 1700000000123, entries: [b64("tx-0"), b64("tx-1"), b64("tx-2")] } });
  assert.equal(await log.Tag(c), TAG);
});

test("the log is bound to one consortium, once", async () => {
  const c = ctx();
  const log = new ConfideLog();
  await assert.rejects(log.Append(c, JSON.stringify([b64("x")])), /not initialized/);
  await assert.rejects(log.Init(c, "nothex"), /32 bytes/);
  await log.Init(c, TAG);
  await assert.rejects(log.Init(c, "cd".repeat(32)), /already bound/);
});

test("bad batches are refused and change nothing", async () => {
  const c = ctx();
  const log = new ConfideLog();
  await log.Init(c, TAG);
  for (const bad of ["not json", "{}", "[]", JSON.stringify(["***"]), JSON.stringify([42]), JSON.stringify([""])]) {
    await assert.rejects(log.Append(c, bad), Error, bad);
  }
  assert.equal(await log.Count(c), 0);
  assert.equal(c.events.length, 0);
});
