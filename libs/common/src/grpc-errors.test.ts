import assert from "node:assert/strict";
import { test } from "node:test";
import { Metadata, status } from "@grpc/grpc-js";
import fc from "fast-check";
import {
  ConflictError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  NotLeaderError,
  PermissionDeniedError,
  TooLargeError,
} from "./errors.js";
import { fromGrpcError, ISSUES_METADATA_KEY, LEADER_METADATA_KEY, toGrpcError } from "./grpc-errors.js";
import {
  asciiJson,
  clip,
  MAX_DETAILS_CHARS,
  MAX_ISSUES_TRAILER_BYTES,
  quote,
  wellFormed,
} from "./safe-text.js";

/** Any UTF-16 text, lone surrogates, controls, RTL overrides and combining marks included. */
const hostileString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 300 }),
  fc.constantFrom("\uFEFF{", "\u202e", "a\u0301\u0301", "\ud800", "\udfff", "😀", "__proto__", "\u0000"),
  fc.integer({ min: 0, max: 2_000_000 }).map((n) => "é".repeat(n % 1_200_000)),
);

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

test("toGrpcError never throws, and every trailer is printable ASCII and bounded", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ path: hostileString, message: hostileString }), { maxLength: 60 }),
      hostileString,
      (issues, leader) => {
        for (const err of [
          new InvalidArgumentError(issues),
          new NotLeaderError(leader),
          new NotFoundError(leader),
          new Error(leader),
          leader,
        ]) {
          const e = toGrpcError(err);
          assert.ok(e.details.length <= MAX_DETAILS_CHARS, `details of ${e.details.length}`);
          assert.equal(wellFormed(e.details), e.details);
          for (const key of [ISSUES_METADATA_KEY, LEADER_METADATA_KEY]) {
            for (const v of e.metadata.get(key)) {
              assert.match(String(v), PRINTABLE_ASCII);
              assert.ok(String(v).length <= MAX_ISSUES_TRAILER_BYTES);
            }
          }
          // What the client reads back is the same list of issues (as bounded by the error).
          if (err instanceof InvalidArgumentError) {
            const raw = String(e.metadata.get(ISSUES_METADATA_KEY)[0]);
            const back = JSON.parse(raw) as { path: string; message: string }[];
            const truncated = /more issues \(truncated\)$/.test(back[back.length - 1]?.message ?? "");
            const kept = truncated ? back.slice(0, -1) : back;
            assert.deepEqual(kept, err.issues.slice(0, kept.length));
            if (!truncated) assert.equal(kept.length, err.issues.length);
          }
        }
      },
    ),
    { numRuns: 200 },
  );
});

test("an error echoes at most a few hundred characters of its input", () => {
  const huge = "x".repeat(1024 * 1024);
  const e = new InvalidArgumentError([{ path: huge, message: `bad ${huge}` }]);
  assert.ok(e.message.length <= MAX_DETAILS_CHARS);
  assert.ok((e.issues[0]?.path.length ?? 0) <= 200);
  assert.match(e.issues[0]?.path ?? "", /truncated\]$/);
  assert.ok(new NotFoundError(`app ${huge}`).message.length < 300);
  const many = new InvalidArgumentError(
    Array.from({ length: 500 }, (_, i) => ({ path: `p${i}`, message: "m" })),
  );
  assert.equal(many.issues.length, 21);
  assert.match(many.issues[20]?.message ?? "", /and 480 more issues/);
});

test("error codes map to gRPC statuses through one table, and back", () => {
  const cases: [Error, status][] = [
    [new InvalidArgumentError([{ path: "a", message: "b" }]), status.INVALID_ARGUMENT],
    [new NotFoundError("app x"), status.NOT_FOUND],
    [new FailedPreconditionError("not subscribed"), status.FAILED_PRECONDITION],
    [new PermissionDeniedError("not yours"), status.PERMISSION_DENIED],
    [new TooLargeError("too big"), status.RESOURCE_EXHAUSTED],
    [new ConflictError("app x"), status.ABORTED],
    [new NotLeaderError("10.0.0.1:5050"), status.UNAVAILABLE],
    [new Error("a bug"), status.INTERNAL],
  ];
  for (const [err, code] of cases) {
    const e = toGrpcError(err);
    assert.equal(e.code, code, err.message);
    const back = fromGrpcError({ ...e, message: e.details, name: "Error" });
    if (!(err.constructor === Error)) assert.equal(back.constructor, err.constructor, err.message);
  }
});

test("a drover-issues trailer is checked on the client, not trusted", () => {
  const md = new Metadata();
  md.set(ISSUES_METADATA_KEY, '[{"path": 1}]');
  const back = fromGrpcError({
    code: status.INVALID_ARGUMENT,
    details: "bad",
    metadata: md,
    message: "bad",
    name: "Error",
  });
  assert.ok(back instanceof InvalidArgumentError);
  assert.deepEqual(back.issues, [{ path: "", message: "bad" }]);
});

test("clip, quote and asciiJson keep text well-formed and parseable", () => {
  fc.assert(
    fc.property(hostileString, fc.integer({ min: 0, max: 400 }), (s, max) => {
      const c = clip(s, Math.max(max, 40));
      assert.ok(c.length <= Math.max(max, 40));
      assert.equal(wellFormed(c), c);
      assert.ok(quote(s).length <= 200);
      const a = asciiJson({ s });
      assert.match(a, PRINTABLE_ASCII);
      assert.deepEqual(JSON.parse(a), JSON.parse(JSON.stringify({ s })));
    }),
    { numRuns: 300 },
  );
});
