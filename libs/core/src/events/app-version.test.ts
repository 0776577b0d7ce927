import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AppSpecSchema } from "../app.js";
import { normalizeApp, toMarathonJson } from "../marathon/app.js";
import { fold } from "./aggregate.js";
import { AppAggregate, type AppEvent, type AppRecord, appVersionAt, appVersionOf } from "./app.js";
import {
  AppVersionEntrySchema,
  appChangeKind,
  appVersionEntry,
  nextAppVersion,
  parseAppVersion,
  versionsToKeep,
} from "./app-version.js";

const T0 = Date.parse("2026-11-29T19:13:37.123Z");
const spec = (instances = 1, cmd = "sleep 100") => AppSpecSchema.parse({ id: "/web", cmd, instances });

describe("app versions", () => {
  it("a version is the time of the change, ISO-8601 in UTC with ms", () => {
    assert.equal(appVersionAt(T0), "2026-11-29T19:13:37.123Z");
    assert.equal(nextAppVersion(undefined, T0), "2026-11-29T19:13:37.123Z");
  });

  it("is unique and increasing per app within one ms and with a clock behind", () => {
    let rec: AppRecord | undefined;
    const seen: string[] = [];
    // Five changes in the same ms, then two from a clock 10 s behind (another leader).
    const times = [T0, T0, T0, T0, T0, T0 - 10_000, T0 - 10_000];
    for (const [i, t] of times.entries()) {
      const version = nextAppVersion(rec, t);
      const event: AppEvent =
        i === 0
          ? { type: "AppCreated", spec: spec(), version }
          : { type: "AppScaled", instances: i, version };
      rec = AppAggregate.apply(rec, event, { id: "web", atMs: t });
      seen.push(version);
    }
    assert.deepEqual(seen, [...seen].sort(), "increasing");
    assert.equal(new Set(seen).size, seen.length, "unique");
    assert.equal(seen[1], "2026-11-29T19:13:37.124Z");
    assert.equal(seen[6], "2026-11-29T19:13:37.129Z");
  });

  it("a scale moves version and lastScalingAt, a config change all three", () => {
    const v1 = "2026-11-29T19:13:37.123Z";
    const v2 = "2026-11-29T19:14:00.000Z";
    const v3 = "2026-11-29T19:15:00.000Z";
    const created = fold(AppAggregate, "web", [
      { event: { type: "AppCreated", spec: spec(), version: v1 }, atMs: T0 },
    ]);
    assert.ok(created);
    assert.deepEqual(appVersionOf(created), {
      version: v1,
      versionInfo: { lastScalingAt: v1, lastConfigChangeAt: v1 },
    });
    const scaled = AppAggregate.apply(
      created,
      { type: "AppScaled", instances: 3, version: v2 },
      { id: "web", atMs: T0 + 1 },
    );
    assert.ok(scaled);
    assert.deepEqual(appVersionOf(scaled), {
      version: v2,
      versionInfo: { lastScalingAt: v2, lastConfigChangeAt: v1 },
    });
    const updated = AppAggregate.apply(
      scaled,
      { type: "AppUpdated", spec: spec(3, "sleep 5"), version: v3 },
      { id: "web", atMs: T0 + 2 },
    );
    assert.ok(updated);
    assert.deepEqual(appVersionOf(updated), {
      version: v3,
      versionInfo: { lastScalingAt: v3, lastConfigChangeAt: v3 },
    });
  });

  it("a record written before versions loads, its version derived from updatedAtMs", () => {
    const old = { spec: spec(), createdAtMs: T0 - 5000, updatedAtMs: T0 };
    const parsed = AppAggregate.stateSchema.parse(old);
    const v = appVersionAt(T0);
    assert.deepEqual(appVersionOf(parsed), {
      version: v,
      versionInfo: { lastScalingAt: v, lastConfigChangeAt: v },
    });
    // Its next change is newer, and a scale keeps the derived lastConfigChangeAt.
    const next = nextAppVersion(parsed, T0 - 60_000);
    assert.equal(next, appVersionAt(T0 + 1));
    const scaled = AppAggregate.apply(
      parsed,
      { type: "AppScaled", instances: 2, version: next },
      { id: "web", atMs: T0 + 1 },
    );
    assert.ok(scaled);
    assert.deepEqual(scaled.versionInfo, { lastScalingAt: next, lastConfigChangeAt: v });
  });

  it("events written before versions leave the version fields alone (a replay rebuilds old projections exactly)", () => {
    const old = fold(AppAggregate, "web", [
      { event: { type: "AppCreated", spec: spec() }, atMs: T0 },
      { event: { type: "AppScaled", instances: 2 }, atMs: T0 + 1 },
    ]);
    assert.deepEqual(old, { spec: spec(2), createdAtMs: T0, updatedAtMs: T0 + 1 });
  });

  it("an identical definition is no change, instances alone a scale, anything else a config change", () => {
    assert.equal(appChangeKind(spec(1), spec(1)), "none");
    // Through JSON (as stored) it is still the same definition.
    assert.equal(appChangeKind(spec(1), JSON.parse(JSON.stringify(spec(1)))), "none");
    assert.equal(appChangeKind(spec(1), spec(4)), "scale");
    assert.equal(appChangeKind(spec(1), spec(1, "sleep 5")), "config");
    assert.equal(appChangeKind(spec(1), spec(4, "sleep 5")), "config");
  });

  it("parses the versions clients write, as the canonical string", () => {
    assert.equal(parseAppVersion("2026-11-29T19:13:37.123Z"), "2026-11-29T19:13:37.123Z");
    assert.equal(parseAppVersion("2026-11-29T20:13:37.123+01:00"), "2026-11-29T19:13:37.123Z");
    assert.equal(parseAppVersion("2026-11-29T19:13:37Z"), "2026-11-29T19:13:37.000Z");
    for (const bad of [
      "",
      "yesterday",
      "2026-11-29",
      "2026-11-29T19:13:37.123",
      "2026-13-45T99:99:99Z",
      "x".repeat(100),
    ])
      assert.equal(parseAppVersion(bad), undefined, bad);
  });

  it("keeps the newest cap - 1 earlier versions; every dropped one is older than every kept one", () => {
    const version = fc.integer({ min: 0, max: 10_000 }).map((ms) => appVersionAt(T0 + ms));
    fc.assert(
      fc.property(
        fc.array(version, { maxLength: 80 }),
        version,
        fc.integer({ min: 1, max: 60 }),
        (stored, current, cap) => {
          const { keep, drop } = versionsToKeep(stored, current, cap);
          const others = new Set(stored.filter((v) => v !== current));
          assert.equal(keep.length, Math.min(others.size, cap - 1));
          assert.equal(keep.length + drop.length, others.size);
          assert.ok(!keep.includes(current) && !drop.includes(current));
          assert.deepEqual(keep, [...keep].sort());
          for (const d of drop) for (const k of keep) assert.ok(d < k);
        },
      ),
    );
    assert.deepEqual(versionsToKeep(["a", "b", "c"], "d", 3), { keep: ["b", "c"], drop: ["a"] });
    assert.deepEqual(versionsToKeep(["a", "b"], "c", 1), { keep: [], drop: ["a", "b"] });
  });

  it("a stored version entry is checked, and Marathon prints version and versionInfo after user", () => {
    const rec = AppAggregate.apply(
      undefined,
      { type: "AppCreated", spec: spec(), version: appVersionAt(T0) },
      { id: "web", atMs: T0 },
    );
    assert.ok(rec);
    const entry = AppVersionEntrySchema.parse(JSON.parse(JSON.stringify(appVersionEntry(rec))));
    const json = toMarathonJson(entry.spec, entry);
    const keys = Object.keys(json);
    assert.equal(keys.indexOf("version"), keys.indexOf("versionInfo") - 1);
    assert.ok(keys.indexOf("version") > keys.indexOf("upgradeStrategy"));
    assert.ok(keys.indexOf("versionInfo") < keys.indexOf("killSelection"));
    assert.deepEqual(json.versionInfo, {
      lastScalingAt: appVersionAt(T0),
      lastConfigChangeAt: appVersionAt(T0),
    });
    // What GET prints can be sent back: version and versionInfo are read-only, ignored.
    const back = normalizeApp(JSON.parse(JSON.stringify(json)));
    assert.ok(back.ok);
    assert.deepEqual(toMarathonJson(back.value), toMarathonJson(entry.spec));
    assert.equal(toMarathonJson(entry.spec).version, undefined);
  });
});
