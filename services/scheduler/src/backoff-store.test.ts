import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { type BackoffPolicy, initialBackoff, recordFailure } from "@drover/core";
import { memoryStore } from "@drover/testing";
import { BACKOFF_PREFIX, backoffKey, PersistedBackoff } from "./backoff-store.js";

const NOW = 1_800_000_000_000;
const POLICY: BackoffPolicy = { initialMs: 1000, factor: 2, maxMs: 300_000, resetAfterMs: 30_000 };
const log = createLogger("test", "error");

function setup() {
  const mem = memoryStore({ service: "scheduler" });
  const configs = new Map<string, string>([
    ["/web", "2026-01-01T00:00:00.000Z"],
    ["/db", "2026-01-01T00:00:00.000Z"],
  ]);
  const table = (leadership = mem.leadership) =>
    new PersistedBackoff({
      store: mem.store,
      leadership,
      log,
      configVersion: (id) => configs.get(id),
      // Flushed by hand in these tests.
      flushMs: 60_000,
    });
  return { ...mem, configs, table };
}

test("a failure that raises the delay is written, and a new leader reads it back", async (t) => {
  const { kv, table } = setup();
  const a = table();
  t.after(() => a.stop());
  let s = initialBackoff();
  for (let i = 0; i < 5; i++) s = recordFailure(s, NOW + i, POLICY);
  a.set("/web", s);
  await a.flush();
  const stored = JSON.parse(kv.get(backoffKey("/web")) ?? "{}") as Record<string, unknown>;
  assert.deepEqual(stored, { ...s, configVersion: "2026-01-01T00:00:00.000Z" });

  const b = table();
  t.after(() => b.stop());
  await b.load();
  assert.deepEqual(b.get("/web"), s);
  assert.equal(b.get("/db"), undefined);
});

test("a storm of failures over many apps is a few transactions; an app writes only its latest state", async (t) => {
  const { kv, configs, table } = setup();
  for (let i = 0; i < 300; i++) configs.set(`/app-${i}`, "2026-01-01T00:00:00.000Z");
  const a = table();
  t.after(() => a.stop());
  const last = new Map<string, ReturnType<typeof initialBackoff>>();
  for (let round = 0; round < 5; round++)
    for (let i = 0; i < 300; i++) {
      const id = `/app-${i}`;
      const s = recordFailure(a.get(id) ?? initialBackoff(), NOW + round * 10, POLICY);
      a.set(id, s);
      last.set(id, s);
    }
  const before = kv.txnCount;
  await a.flush();
  assert.equal(kv.txnCount - before, 3, "300 keys in transactions of 100");
  assert.equal(kv.keys(BACKOFF_PREFIX).length, 300);
  assert.deepEqual(JSON.parse(kv.get(backoffKey("/app-7")) ?? "{}").failures, 5);
  // Nothing changed since: the next flush writes nothing, nor does setting the same states again.
  for (const [id, s] of last) a.set(id, s);
  await a.flush();
  assert.equal(kv.txnCount - before, 3);
});

test("a reset deletes the key; setting the initial state of an app with none writes nothing", async (t) => {
  const { kv, table } = setup();
  const a = table();
  t.after(() => a.stop());
  a.set("/web", recordFailure(initialBackoff(), NOW, POLICY));
  await a.flush();
  assert.ok(kv.get(backoffKey("/web")));
  a.set("/web", initialBackoff());
  await a.flush();
  assert.equal(kv.get(backoffKey("/web")), undefined);
  const before = kv.txnCount;
  a.set("/db", initialBackoff());
  await a.flush();
  assert.equal(kv.txnCount, before);
});

test("a config change starts the app afresh (its key goes); a scale does not", async (t) => {
  const { kv, configs, table } = setup();
  const a = table();
  t.after(() => a.stop());
  const s = recordFailure(initialBackoff(), NOW, POLICY);
  a.set("/web", s);
  a.set("/db", s);
  await a.flush();
  // /db scaled: lastConfigChangeAt is the same; /web got a new definition.
  configs.set("/web", "2026-02-02T00:00:00.000Z");
  assert.deepEqual(a.get("/db"), s);
  assert.equal(a.get("/web"), undefined);
  // The driver then records the initial state for /web (what plan() does every converge).
  a.set("/web", a.get("/web") ?? initialBackoff());
  await a.flush();
  assert.equal(kv.get(backoffKey("/web")), undefined);
  assert.ok(kv.get(backoffKey("/db")));
});

test("on load, keys of apps gone or changed meanwhile and invalid values are dropped", async (t) => {
  const { kv, configs, table } = setup();
  const a = table();
  t.after(() => a.stop());
  const s = recordFailure(initialBackoff(), NOW, POLICY);
  a.set("/web", s);
  a.set("/db", s);
  await a.flush();
  kv.put(`${BACKOFF_PREFIX}junk`, "{not json");
  configs.delete("/db");
  const b = table();
  t.after(() => b.stop());
  await b.load();
  assert.equal(b.get("/db"), undefined);
  await b.flush();
  assert.deepEqual(kv.keys(BACKOFF_PREFIX), [backoffKey("/web")]);
});

test("a deposed leader's writes are fenced; it stops writing", async (t) => {
  const { kv, leadership, table } = setup();
  const a = table();
  t.after(() => a.stop());
  leadership.depose();
  a.set("/web", recordFailure(initialBackoff(), NOW, POLICY));
  await a.flush();
  assert.equal(kv.get(backoffKey("/web")), undefined);
  a.set("/web", recordFailure(a.get("/web") ?? initialBackoff(), NOW + 1, POLICY));
  const before = kv.failures.length + kv.txnCount;
  await a.flush();
  assert.equal(kv.failures.length + kv.txnCount, before, "no write tried after the fence refused one");
});

test("prune drops the key of an app deleted since (the driver no longer sets its state)", async (t) => {
  const { kv, configs, table } = setup();
  const a = table();
  t.after(() => a.stop());
  a.set("/web", recordFailure(initialBackoff(), NOW, POLICY));
  a.set("/db", recordFailure(initialBackoff(), NOW, POLICY));
  await a.flush();
  configs.delete("/web");
  a.prune();
  await a.flush();
  assert.deepEqual(kv.keys(BACKOFF_PREFIX), [backoffKey("/db")]);
});
