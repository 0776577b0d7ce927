import assert from "node:assert/strict";
import { test } from "node:test";
import { TooLargeError, UnavailableError } from "@drover/common";
import { storeCall } from "@drover/store";
import {
  CompareResult,
  CompareTarget,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCOutOfRangeError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
  type ICompare,
  type IRequestOp,
  SortOrder,
  SortTarget,
} from "etcd3";
import { ETCD_MESSAGES } from "./etcd-errors.js";
import { FakeClock } from "./fake-clock.js";
import { MemoryKv } from "./memory-kv.js";

const b = (s: string) => Buffer.from(s);
const put = (key: string, value: string): IRequestOp => ({ request_put: { key: b(key), value: b(value) } });
const del = (key: string, rangeEnd?: string): IRequestOp => ({
  request_delete_range: { key: b(key), ...(rangeEnd !== undefined ? { range_end: b(rangeEnd) } : {}) },
});
const get = (key: string): IRequestOp => ({ request_range: { key: b(key) } });
const cmp = (
  key: string,
  target: CompareTarget,
  result: CompareResult,
  rest: Partial<ICompare>,
): ICompare => ({
  key: b(key),
  target,
  result,
  ...rest,
});
const keysOf = (kvs: { key: Buffer }[]) => kvs.map((kv) => kv.key.toString());

test("revisions: one per writing transaction; create, mod and version per key; a delete ends a key's life", async () => {
  const kv = new MemoryKv();
  assert.equal(kv.revision, 1);
  const r1 = await kv.txn({ success: [put("a", "1"), put("b", "1")] });
  assert.equal(r1.header.revision, "2");
  assert.equal(typeof r1.header.revision, "string");
  await kv.txn({ success: [put("a", "2")] });
  let a = kv.getKv("a");
  assert.deepEqual(
    { create: a?.create_revision, mod: a?.mod_revision, version: a?.version },
    { create: "2", mod: "3", version: "2" },
  );
  assert.ok(Buffer.isBuffer(a?.key) && Buffer.isBuffer(a?.value));
  assert.equal(a?.value.toString(), "2");

  const d = await kv.txn({ success: [del("a")] });
  assert.equal(d.header.revision, "4");
  assert.equal(d.responses[0]?.response_delete_range.deleted, "1");
  assert.equal(kv.getKv("a"), undefined);
  await kv.txn({ success: [put("a", "3")] });
  a = kv.getKv("a");
  assert.deepEqual(
    { create: a?.create_revision, mod: a?.mod_revision, version: a?.version },
    { create: "5", mod: "5", version: "1" },
  );

  // Nothing changed: no new revision (a read, a delete of nothing, a failed compare).
  await kv.txn({ success: [get("a"), del("nothing")] });
  await kv.txn({
    compare: [cmp("a", CompareTarget.Version, CompareResult.Equal, { version: 9 })],
    success: [put("a", "x")],
  });
  assert.equal(kv.revision, 5);
  assert.equal(kv.txnCount, 6);
  assert.equal(kv.writeTxnCount, 4);
});

test("a writing transaction's header revision is the mod revision of every key it wrote (optimistic concurrency on MOD)", async () => {
  const kv = new MemoryKv();
  const res = await kv.txn({ success: [put("a", "1"), put("b", "1"), del("nothing")] });
  assert.equal(kv.getKv("a")?.mod_revision, res.header.revision);
  assert.equal(kv.getKv("b")?.mod_revision, res.header.revision);
  const modIs = (key: string, rev: string) => ({
    compare: [cmp(key, CompareTarget.Mod, CompareResult.Equal, { mod_revision: rev })],
    success: [put(key, "next")],
  });
  // The revision last seen: the write goes through; the same revision again: refused.
  const next = await kv.txn(modIs("a", res.header.revision));
  assert.equal(next.succeeded, true);
  assert.equal((await kv.txn(modIs("a", res.header.revision))).succeeded, false);
  // A key that does not exist has mod revision 0 (a create); a deleted and re-created key a new one.
  assert.equal((await kv.txn(modIs("c", "0"))).succeeded, true);
  assert.equal((await kv.txn(modIs("c", "0"))).succeeded, false);
  kv.delete("b");
  assert.equal((await kv.txn(modIs("b", res.header.revision))).succeeded, false);
  assert.equal((await kv.txn(modIs("b", "0"))).succeeded, true);
});

test("compares: VERSION, CREATE, MOD, VALUE with EQUAL, NOT_EQUAL, GREATER, LESS", async () => {
  const kv = new MemoryKv();
  kv.put("k", "m"); // rev 2, version 1
  kv.put("k", "m"); // rev 3, version 2
  const holds = async (c: ICompare) => (await kv.txn({ compare: [c], success: [], failure: [] })).succeeded;
  const { Equal, NotEqual, Greater, Less } = CompareResult;
  assert.equal(await holds(cmp("k", CompareTarget.Version, Equal, { version: 2 })), true);
  assert.equal(await holds(cmp("k", CompareTarget.Version, Greater, { version: 1 })), true);
  assert.equal(await holds(cmp("k", CompareTarget.Version, Less, { version: 2 })), false);
  assert.equal(await holds(cmp("k", CompareTarget.Create, Equal, { create_revision: "2" })), true);
  assert.equal(await holds(cmp("k", CompareTarget.Create, NotEqual, { create_revision: "2" })), false);
  assert.equal(await holds(cmp("k", CompareTarget.Mod, Equal, { mod_revision: 3 })), true);
  assert.equal(await holds(cmp("k", CompareTarget.Mod, Less, { mod_revision: 4 })), true);
  assert.equal(await holds(cmp("k", CompareTarget.Value, Equal, { value: b("m") })), true);
  assert.equal(await holds(cmp("k", CompareTarget.Value, Greater, { value: b("a") })), true);
  assert.equal(await holds(cmp("k", CompareTarget.Value, Less, { value: b("a") })), false);
  assert.equal(await holds(cmp("k", CompareTarget.Value, NotEqual, { value: b("n") })), true);
  // etcd3's names and the proto's names for the enums are accepted too.
  assert.equal(await holds({ key: b("k"), target: "Version", result: "Equal", version: 2 }), true);

  // A missing key: version, create and mod are 0; a VALUE compare is always false (etcd's applyCompare).
  assert.equal(await holds(cmp("none", CompareTarget.Version, Equal, { version: 0 })), true);
  assert.equal(await holds(cmp("none", CompareTarget.Create, Equal, { create_revision: 0 })), true);
  assert.equal(await holds(cmp("none", CompareTarget.Mod, Less, { mod_revision: 1 })), true);
  assert.equal(await holds(cmp("none", CompareTarget.Value, Equal, { value: b("") })), false);
  assert.equal(await holds(cmp("none", CompareTarget.Value, NotEqual, { value: b("x") })), false);

  // Over a range: every key in it must satisfy the compare.
  kv.put("p/1", "x");
  kv.put("p/2", "x");
  assert.equal(
    await holds(cmp("p/", CompareTarget.Value, Equal, { value: b("x"), range_end: b("p0") })),
    true,
  );
  kv.put("p/3", "y");
  assert.equal(
    await holds(cmp("p/", CompareTarget.Value, Equal, { value: b("x"), range_end: b("p0") })),
    false,
  );
  // All compares must hold.
  const both = await kv.txn({
    compare: [
      cmp("k", CompareTarget.Version, Equal, { version: 2 }),
      cmp("k", CompareTarget.Version, Equal, { version: 3 }),
    ],
  });
  assert.equal(both.succeeded, false);
});

test("success and failure branches: responses in order, reads see the transaction's earlier writes", async () => {
  const kv = new MemoryKv();
  kv.put("v", "1");
  const ok = await kv.txn({
    compare: [cmp("v", CompareTarget.Value, CompareResult.Equal, { value: b("1") })],
    success: [get("v"), put("v", "2"), get("v"), put("w", "new")],
    failure: [get("v")],
  });
  assert.equal(ok.succeeded, true);
  assert.equal(ok.responses.length, 4);
  assert.equal(ok.responses[0]?.response_range.kvs[0]?.value.toString(), "1");
  assert.ok(ok.responses[1]?.response_put);
  assert.equal(ok.responses[2]?.response_range.kvs[0]?.value.toString(), "2");
  assert.equal(ok.header.revision, "3");

  const failed = await kv.txn({
    compare: [cmp("v", CompareTarget.Value, CompareResult.Equal, { value: b("1") })],
    success: [put("v", "never")],
    failure: [get("v"), get("w")],
  });
  assert.equal(failed.succeeded, false);
  assert.deepEqual(
    failed.responses.map((r) => r.response_range.kvs[0]?.value.toString()),
    ["2", "new"],
  );
  assert.equal(kv.get("v"), "2");
});

test("delete ranges: one key, [key, range_end), a prefix, and '\\0' for every key from key on", async () => {
  const kv = new MemoryKv();
  for (const k of ["a", "b/1", "b/2", "b0", "c", "d"]) kv.put(k, "x");
  const deleted = async (op: IRequestOp) =>
    (await kv.txn({ success: [op] })).responses[0]?.response_delete_range.deleted;
  assert.equal(await deleted(del("a")), "1");
  assert.equal(await deleted(del("b/", "b0")), "2"); // the prefix "b/" ("b/" + 1 = "b0")
  assert.deepEqual(kv.keys(), ["b0", "c", "d"]);
  assert.equal(await deleted(del("c", "\0")), "2");
  assert.deepEqual(kv.keys(), ["b0"]);
  const prev = await kv.txn({ success: [{ request_delete_range: { key: b("b0"), prev_kv: true } }] });
  assert.equal(prev.responses[0]?.response_delete_range.prev_kvs[0]?.value.toString(), "x");
});

test("range: limit with more and count, keys_only, count_only, '\\0' ends, sort, revision filters", async () => {
  const kv = new MemoryKv();
  for (let i = 0; i < 10; i++) kv.put(`/p/${i}`, `v${9 - i}`);
  kv.put("/q", "q");
  const page = await kv.range({ key: b("/p/"), range_end: b("/p0"), limit: 3 });
  assert.deepEqual(keysOf(page.kvs), ["/p/0", "/p/1", "/p/2"]);
  assert.equal(page.more, true);
  assert.equal(page.count, "10");
  const rest = await kv.range({ key: b("/p/7"), range_end: b("/p0"), limit: "3" });
  assert.deepEqual(keysOf(rest.kvs), ["/p/7", "/p/8", "/p/9"]);
  assert.equal(rest.more, false);

  const keysOnly = await kv.range({ key: b("/p/1"), keys_only: true });
  assert.equal(keysOnly.kvs[0]?.value.length, 0);
  const countOnly = await kv.range({ key: b("/p/"), range_end: b("/p0"), count_only: true });
  assert.deepEqual({ kvs: countOnly.kvs.length, count: countOnly.count }, { kvs: 0, count: "10" });

  assert.equal((await kv.range({ key: b("/p/5"), range_end: b("\0") })).count, "6"); // /p/5../p/9 and /q
  assert.equal((await kv.range({ key: b("\0"), range_end: b("\0") })).count, "11");
  assert.equal((await kv.range({ key: b("/nothing") })).kvs.length, 0);

  const byValue = await kv.range({
    key: b("/p/"),
    range_end: b("/p0"),
    sort_target: SortTarget.Value,
    sort_order: SortOrder.Ascend,
    limit: 2,
  });
  assert.deepEqual(keysOf(byValue.kvs), ["/p/9", "/p/8"]);
  const newest = await kv.range({
    key: b("/p/"),
    range_end: b("/p0"),
    sort_target: SortTarget.Create,
    sort_order: SortOrder.Descend,
    limit: 1,
  });
  assert.deepEqual(keysOf(newest.kvs), ["/p/9"]);
  const older = await kv.range({ key: b("/p/"), range_end: b("/p0"), max_create_revision: 4 });
  assert.deepEqual(keysOf(older.kvs), ["/p/0", "/p/1", "/p/2"]);
  assert.equal(older.count, "10"); // etcd counts before it filters
});

test("range at an older revision (MVCC), and etcd's errors for compacted and future revisions", async () => {
  const kv = new MemoryKv();
  const r2 = kv.put("k", "one");
  kv.put("k", "two");
  kv.put("other", "x");
  kv.delete("k");
  const r6 = kv.put("k", "three");
  const at = async (rev: number) => (await kv.range({ key: b("k"), revision: rev })).kvs[0]?.value.toString();
  assert.equal(await at(1), undefined);
  assert.equal(await at(r2), "one");
  assert.equal(await at(3), "two");
  assert.equal(await at(5), undefined);
  assert.equal(await at(r6), "three");
  const old = await kv.range({ key: b("k"), revision: 3 });
  assert.equal(old.header.revision, "6"); // the header is always the current revision
  assert.equal(old.kvs[0]?.mod_revision, "3");

  await assert.rejects(kv.range({ key: b("k"), revision: 7 }), (err: Error) => {
    assert.ok(err instanceof GRPCOutOfRangeError);
    assert.match(err.message, /required revision is a future revision/);
    return true;
  });
  kv.compact(4);
  await assert.rejects(kv.range({ key: b("k"), revision: 3 }), (err: Error) => {
    assert.ok(err instanceof GRPCOutOfRangeError);
    assert.match(err.message, /etcdserver: mvcc: required revision has been compacted/);
    return true;
  });
  assert.equal(await at(4), "two"); // the compaction revision itself is still readable
  assert.equal(await at(5), undefined);
  assert.equal(await at(6), "three");
  // A read in a transaction at a compacted revision fails the whole transaction, and nothing is written.
  await assert.rejects(
    kv.txn({ success: [put("z", "1"), { request_range: { key: b("k"), revision: 2 } }] }),
    /compacted/,
  );
  assert.equal(kv.get("z"), undefined);
  assert.throws(() => kv.compact(3), /compacted/);
});

test("etcd's operation limit: 129 operations are refused with etcd's error, 128 pass", async () => {
  const kv = new MemoryKv();
  const ops = (n: number) => Array.from({ length: n }, (_, i) => put(`/k/${i}`, "v"));
  await kv.txn({ success: ops(128) });
  assert.equal(kv.revision, 2);
  for (const req of [
    { success: ops(129) },
    { failure: ops(129) },
    {
      compare: ops(129).map((_, i) =>
        cmp(`/k/${i}`, CompareTarget.Version, CompareResult.Equal, { version: 1 }),
      ),
    },
  ]) {
    await assert.rejects(kv.txn(req), (err: Error) => {
      // What etcd3 throws: castGrpcError maps INVALID_ARGUMENT (3) to GRPCInvalidArgumentError,
      // and keeps grpc-js's message "<code> <NAME>: <details>".
      assert.ok(err instanceof GRPCInvalidArgumentError);
      assert.equal(err.message, `3 INVALID_ARGUMENT: ${ETCD_MESSAGES.tooManyOps}`);
      return true;
    });
  }
  assert.equal(kv.revision, 2);
  assert.equal(kv.txnCount, 1);
  assert.equal(kv.failures.filter((f) => f.why === "refused").length, 3);
  // storeError does not translate it: it is a bug of the caller, not a condition.
  await assert.rejects(
    storeCall("a commit", () => kv.txn({ success: ops(129) })),
    (err) => err instanceof GRPCInvalidArgumentError,
  );
});

test("etcd's size limits: over max-request-bytes is 'request is too large'; over gRPC's limit RESOURCE_EXHAUSTED", async () => {
  const kv = new MemoryKv();
  const value = (n: number) => Buffer.alloc(n, 0x61);
  await kv.txn({ success: [{ request_put: { key: b("k"), value: value(1536 * 1024 - 64) } }] });
  await assert.rejects(
    kv.txn({ success: [{ request_put: { key: b("k"), value: value(1536 * 1024) } }] }),
    (err: Error) =>
      err instanceof GRPCInvalidArgumentError && err.message.endsWith(ETCD_MESSAGES.requestTooLarge),
  );
  await assert.rejects(
    kv.txn({ success: [{ request_put: { key: b("k"), value: value(2048 * 1024 + 1) } }] }),
    (err: Error) =>
      err instanceof GRPCResourceExhastedError && /grpc: received message larger than max/.test(err.message),
  );
  // storeError turns RESOURCE_EXHAUSTED into TooLargeError.
  await assert.rejects(
    storeCall("a commit", () =>
      kv.txn({ success: [{ request_put: { key: b("k"), value: value(2048 * 1024 + 1) } }] }),
    ),
    (err) => err instanceof TooLargeError,
  );
  // A smaller limit, as etcd --max-request-bytes.
  const small = new MemoryKv({ maxRequestBytes: 1000 });
  await assert.rejects(small.txn({ success: [put("k", "x".repeat(1000))] }), /request is too large/);
});

test("etcd's other checks: duplicate keys in a branch, empty keys", async () => {
  const kv = new MemoryKv();
  await assert.rejects(
    kv.txn({ success: [put("a", "1"), put("a", "2")] }),
    /duplicate key given in txn request/,
  );
  await assert.rejects(kv.txn({ success: [del("a", "b"), put("a/x", "1")] }), /duplicate key/);
  await assert.rejects(kv.txn({ failure: [del("a"), put("a", "1")] }), /duplicate key/);
  // The branches are checked separately, and deletes may overlap.
  await kv.txn({ success: [put("a", "1")], failure: [put("a", "2")] });
  await kv.txn({ success: [del("a"), del("a", "b")] });
  await assert.rejects(kv.txn({ success: [put("", "1")] }), /key is not provided/);
  await assert.rejects(kv.range({ key: b("") }), /key is not provided/);
  await assert.rejects(
    kv.txn({ success: [{ request_put: { key: b("missing"), ignore_value: true } }] }),
    /etcdserver: key not found/,
  );
});

test("keys and values are copied: a caller's buffer can be reused", async () => {
  const kv = new MemoryKv();
  const v = b("abc");
  await kv.txn({ success: [{ request_put: { key: b("k"), value: v } }] });
  v.write("zzz");
  const res = await kv.range({ key: b("k") });
  assert.equal(res.kvs[0]?.value.toString(), "abc");
  res.kvs[0]?.value.write("yyy");
  assert.equal(kv.get("k"), "abc");
});

test("failNext: the next calls fail (UNAVAILABLE by default), optionally after being applied", async () => {
  const kv = new MemoryKv();
  kv.failNext(2);
  await assert.rejects(kv.range({ key: b("k") }), (err) => err instanceof GRPCUnavailableError);
  await assert.rejects(
    storeCall("a read", () => kv.range({ key: b("k") })),
    (err) => err instanceof UnavailableError,
  );
  await kv.range({ key: b("k") });

  kv.failNext(1, new Error("boom"), { only: "txn" });
  await kv.range({ key: b("k") }); // not a txn: unaffected
  await assert.rejects(kv.txn({ success: [put("k", "1")] }), /boom/);
  assert.equal(kv.get("k"), undefined);

  // Applied, but the answer is lost: the caller cannot know the write landed.
  kv.failNext(1, undefined, { applied: true });
  await assert.rejects(kv.txn({ success: [put("k", "2")] }));
  assert.equal(kv.get("k"), "2");
  assert.equal(kv.failures.filter((f) => f.why === "injected").length, 4);
});

test("freeze: calls wait and are applied in order at unfreeze", async () => {
  const kv = new MemoryKv();
  kv.freeze();
  const order: string[] = [];
  const first = kv.txn({ success: [put("k", "1")] }).then(() => order.push("first"));
  const second = kv.txn({ success: [put("k", "2")] }).then(() => order.push("second"));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, []);
  assert.equal(kv.waitingCalls, 2);
  assert.equal(kv.get("k"), undefined);
  kv.unfreeze();
  await Promise.all([first, second]);
  assert.deepEqual(order, ["first", "second"]);
  assert.equal(kv.get("k"), "2");
  assert.equal(kv.getKv("k")?.version, "2");
});

test("freeze with a deadline: DEADLINE_EXCEEDED on the clock (UnavailableError through storeCall); applyLate lands the write", async () => {
  const clock = new FakeClock();
  const kv = new MemoryKv({ deadlineMs: 3000, clock });
  kv.freeze();
  const read = storeCall("a read", () => kv.range({ key: b("k") }));
  const write = kv.txn({ success: [put("k", "1")] });
  const settled = Promise.allSettled([read, write]);
  await clock.advance(2999);
  assert.equal(kv.waitingCalls, 2);
  await clock.advance(1);
  const [r, w] = await settled;
  assert.ok(r.status === "rejected" && r.reason instanceof UnavailableError);
  assert.ok(w.status === "rejected" && w.reason instanceof GRPCDeadlineExceededError);
  kv.unfreeze();
  assert.equal(kv.get("k"), undefined); // timed out: never applied

  kv.freeze({ applyLate: true, deadlineMs: 100 });
  const late = kv.txn({ success: [put("k", "late")] }).then(
    () => "answered",
    (err) => err,
  );
  await clock.advance(100);
  assert.ok((await late) instanceof GRPCDeadlineExceededError);
  assert.equal(kv.get("k"), undefined);
  kv.unfreeze();
  assert.equal(kv.get("k"), "late"); // the client gave up, the write landed
});

test("onWrite tells each changed key once its transaction is applied", async () => {
  const kv = new MemoryKv();
  const seen: string[] = [];
  const stop = kv.onWrite((w) => seen.push(`${w.type} ${w.key}@${w.revision}`));
  kv.put("a", "1");
  await kv.txn({ success: [put("b", "1"), del("a")] });
  stop();
  kv.put("c", "1");
  assert.deepEqual(seen, ["put a@2", "put b@3", "delete a@3"]);
});
