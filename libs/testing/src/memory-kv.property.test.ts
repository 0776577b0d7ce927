/**
 * MemoryKv against a naive model of etcd's KV: a full copy of the key space per revision. Random
 * sequences of transactions (compares, puts, deletes of keys and ranges, reads at old revisions)
 * and compactions must give the same answers, the same errors and the same history.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ICompare, IRangeResponse, IRequestOp, ITxnResponse } from "etcd3";
import fc from "fast-check";
import { ETCD_MESSAGES } from "./etcd-errors.js";
import { MemoryKv } from "./memory-kv.js";

interface ModelKv {
  value: string;
  create: number;
  mod: number;
  version: number;
}
type Snapshot = Map<string, ModelKv>;

type Op =
  | { t: "put"; key: string; value: string }
  | { t: "del"; key: string; end: string | undefined }
  | { t: "get"; key: string; end: string | undefined; rev: number; limit: number };

interface Cmp {
  key: string;
  target: 0 | 1 | 2 | 3;
  result: 0 | 1 | 2 | 3;
  n: number;
  value: string;
}

type Step =
  | { kind: "txn"; compare: Cmp[]; success: Op[]; failure: Op[] }
  | { kind: "compact"; rev: number }
  | { kind: "range"; key: string; end: string | undefined; rev: number; limit: number };

/** What a call answered, comparable between the store and the model. */
type Outcome = { error: string } | { ok: unknown };

class Model {
  snapshots: Snapshot[] = [new Map(), new Map()]; // index = revision; revision 1 is empty
  compactRev = 0;

  get rev(): number {
    return this.snapshots.length - 1;
  }

  private inSpan(k: string, key: string, end: string | undefined): boolean {
    if (end === undefined) return k === key;
    return k >= key && (end === "\0" || k < end);
  }

  private checkRev(rev: number): string | undefined {
    if (rev <= 0) return undefined;
    if (rev > this.rev) return ETCD_MESSAGES.futureRevision;
    if (rev < this.compactRev) return ETCD_MESSAGES.compacted;
    return undefined;
  }

  private read(snap: Snapshot, o: { key: string; end: string | undefined; limit: number }) {
    const keys = [...snap.keys()].filter((k) => this.inSpan(k, o.key, o.end)).sort();
    const limited = o.limit > 0 ? keys.slice(0, o.limit) : keys;
    return {
      kvs: limited.map((k) => {
        const e = snap.get(k) as ModelKv;
        return [k, e.value, e.create, e.mod, e.version];
      }),
      more: limited.length < keys.length,
      count: keys.length,
    };
  }

  range(s: { key: string; end: string | undefined; rev: number; limit: number }): Outcome {
    const err = this.checkRev(s.rev);
    if (err) return { error: err };
    return { ok: this.read(this.snapshots[s.rev > 0 ? s.rev : this.rev] as Snapshot, s) };
  }

  compact(rev: number): Outcome {
    if (rev > this.rev) return { error: ETCD_MESSAGES.futureRevision };
    if (rev <= this.compactRev) return { error: ETCD_MESSAGES.compacted };
    this.compactRev = rev;
    return { ok: rev };
  }

  txn(s: { compare: Cmp[]; success: Op[]; failure: Op[] }): Outcome {
    for (const branch of [s.success, s.failure]) {
      const puts = new Set<string>();
      for (const op of branch) {
        if (op.t !== "put") continue;
        const covered = branch.some((d) => d.t === "del" && this.inSpan(op.key, d.key, d.end));
        if (puts.has(op.key) || covered) return { error: ETCD_MESSAGES.duplicateKey };
        puts.add(op.key);
      }
    }
    const current = this.snapshots[this.rev] as Snapshot;
    const succeeded = s.compare.every((c) => {
      const e = current.get(c.key);
      if (!e && c.target === 3) return false;
      const d =
        c.target === 3
          ? Buffer.compare(Buffer.from(e?.value ?? ""), Buffer.from(c.value))
          : Math.sign(
              (c.target === 0 ? (e?.version ?? 0) : c.target === 1 ? (e?.create ?? 0) : (e?.mod ?? 0)) - c.n,
            );
      return [d === 0, d > 0, d < 0, d !== 0][c.result];
    });
    const ops = succeeded ? s.success : s.failure;
    for (const op of ops) {
      const err = op.t === "get" ? this.checkRev(op.rev) : undefined;
      if (err) return { error: err };
    }
    const newRev = this.rev + 1;
    const work: Snapshot = new Map(current);
    let changed = false;
    const responses = ops.map((op): unknown => {
      switch (op.t) {
        case "get":
          return { range: this.read(op.rev > 0 ? (this.snapshots[op.rev] as Snapshot) : work, op) };
        case "put": {
          const cur = work.get(op.key);
          work.set(op.key, {
            value: op.value,
            create: cur ? cur.create : newRev,
            mod: newRev,
            version: cur ? cur.version + 1 : 1,
          });
          changed = true;
          return { put: true };
        }
        case "del": {
          let deleted = 0;
          for (const k of [...work.keys()])
            if (this.inSpan(k, op.key, op.end)) {
              work.delete(k);
              deleted += 1;
            }
          if (deleted > 0) changed = true;
          return { deleted };
        }
        default:
          throw new Error("unknown op");
      }
    });
    if (changed) this.snapshots.push(work);
    return { ok: { succeeded, revision: this.rev, responses } };
  }
}

const b = (s: string) => Buffer.from(s);

function toOp(op: Op): IRequestOp {
  switch (op.t) {
    case "put":
      return { request_put: { key: b(op.key), value: b(op.value) } };
    case "del":
      return {
        request_delete_range: { key: b(op.key), ...(op.end !== undefined ? { range_end: b(op.end) } : {}) },
      };
    case "get":
      return {
        request_range: {
          key: b(op.key),
          ...(op.end !== undefined ? { range_end: b(op.end) } : {}),
          revision: op.rev,
          limit: op.limit,
        },
      };
  }
}

function toCompare(c: Cmp): ICompare {
  const field = ["version", "create_revision", "mod_revision"][c.target];
  return {
    key: b(c.key),
    target: c.target,
    result: c.result,
    ...(c.target === 3 ? { value: b(c.value) } : { [field as string]: c.n }),
  };
}

function rangeView(r: IRangeResponse) {
  return {
    kvs: r.kvs.map((kv) => [
      kv.key.toString(),
      kv.value.toString(),
      Number(kv.create_revision),
      Number(kv.mod_revision),
      Number(kv.version),
    ]),
    more: r.more,
    count: Number(r.count),
  };
}

function txnView(res: ITxnResponse) {
  return {
    succeeded: res.succeeded,
    revision: Number(res.header.revision),
    responses: res.responses.map((r) =>
      r.response_range
        ? { range: rangeView(r.response_range) }
        : r.response_put
          ? { put: true }
          : { deleted: Number(r.response_delete_range.deleted) },
    ),
  };
}

async function outcome(fn: () => Promise<unknown> | unknown): Promise<Outcome> {
  try {
    return { ok: await fn() };
  } catch (err) {
    const m = /^\d+ [A-Z_]+: (.*)$/.exec((err as Error).message);
    return { error: m?.[1] ?? (err as Error).message };
  }
}

const key = fc.constantFrom("a", "a/1", "a/2", "b", "c", "d");
const end = fc.option(fc.constantFrom("a/", "a0", "b", "c", "e", "\0"), { nil: undefined });
const value = fc.constantFrom("", "x", "y", "z");
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant("put" as const), key, value }),
  fc.record({ t: fc.constant("put" as const), key, value }),
  fc.record({ t: fc.constant("del" as const), key, end }),
  fc.record({ t: fc.constant("get" as const), key, end, rev: fc.nat(12), limit: fc.nat(3) }),
);
const cmp: fc.Arbitrary<Cmp> = fc.record({
  key,
  target: fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const),
  result: fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const),
  n: fc.nat(8),
  value,
});
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("txn" as const),
      compare: fc.array(cmp, { maxLength: 2 }),
      success: fc.array(op, { maxLength: 4 }),
      failure: fc.array(op, { maxLength: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("compact" as const), rev: fc.nat(12) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("range" as const),
      key,
      end,
      rev: fc.nat(12),
      limit: fc.nat(3),
    }),
  },
);

test("MemoryKv behaves as a naive model of etcd (random transactions, reads at old revisions, compactions)", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(step, { maxLength: 30 }), async (steps) => {
      const kv = new MemoryKv();
      const model = new Model();
      for (const s of steps) {
        let got: Outcome;
        let want: Outcome;
        if (s.kind === "txn") {
          got = await outcome(async () =>
            txnView(
              await kv.txn({
                compare: s.compare.map(toCompare),
                success: s.success.map(toOp),
                failure: s.failure.map(toOp),
              }),
            ),
          );
          want = model.txn(s);
        } else if (s.kind === "compact") {
          got = await outcome(() => {
            kv.compact(s.rev);
            return s.rev;
          });
          want = model.compact(s.rev);
        } else {
          got = await outcome(async () =>
            rangeView(
              await kv.range({
                key: b(s.key),
                ...(s.end !== undefined ? { range_end: b(s.end) } : {}),
                revision: s.rev,
                limit: s.limit,
              }),
            ),
          );
          want = model.range(s);
        }
        assert.deepEqual(got, want, JSON.stringify(s));
        assert.equal(kv.revision, model.rev);
      }
      // The whole history that is left: every revision from the compaction on reads as the model's.
      for (let rev = Math.max(1, model.compactRev); rev <= model.rev; rev++) {
        const all = rangeView(await kv.range({ key: b("\0"), range_end: b("\0"), revision: rev }));
        assert.deepEqual(
          { ok: all },
          model.range({ key: "\0", end: "\0", rev, limit: 0 }),
          `revision ${rev}`,
        );
      }
    }),
    { numRuns: 300 },
  );
});
