/**
 * normalizeApp against the corpus of real Marathon app definitions
 * (integration-tests/corpus/marathon: one definition per file, expected.json saying run or refuse
 * and which fields are refused). Where Drover decides otherwise, DROVER_DECIDES says what and why;
 * every other file must agree with expected.json.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { normalizeApp } from "./app.js";

/** The corpus folder, from the repository root (this file runs as libs/core/dist/marathon/corpus.test.js). */
const CORPUS = new URL("../../../../integration-tests/corpus/marathon/", import.meta.url);

interface Expectation {
  outcome: "run" | "refuse";
  refusedFields: string[];
}

const PERSISTENT =
  "a persistent volume on a Mesos mount disk is refused: Drover's agents offer only their root disk, so the app " +
  "would wait forever for a disk no agent has";

/** Where Drover's answer differs from expected.json, on purpose. */
const DROVER_DECIDES: Record<string, Expectation & { why: string }> = {
  "08-rest-api-foo.json": {
    outcome: "refuse",
    refusedFields: [
      "args",
      "secrets",
      "env.PASSWORD",
      "ipAddress",
      "acceptedResourceRoles",
      "container.docker.parameters[0].key",
    ],
    why: "also names the docker parameter `name` (Drover names task containers itself; not in the allow-list)",
  },
  "10-product-service-my-app.json": {
    outcome: "refuse",
    refusedFields: [
      "constraints",
      "acceptedResourceRoles",
      "ipAddress",
      "container.docker.parameters[0].key",
      "container.docker.parameters[1].key",
    ],
    why: "also names the placeholder docker parameters a-docker-option and b-docker-option (not in the allow-list)",
  },
  "17-postgres-residency.json": {
    outcome: "refuse",
    refusedFields: ["container.volumes[0].persistent.type"],
    why: PERSISTENT,
  },
  "19-ipv6-mesos-http.json": {
    outcome: "refuse",
    refusedFields: ["healthChecks[0].ipProtocol"],
    why: "IPv6 health checks are refused: Drover's task networking (published ports, agent checks) is IPv4 only",
  },
  "24-privileged-job.json": {
    outcome: "refuse",
    refusedFields: ["container.docker.parameters[1].key", "container.docker.parameters[2].key"],
    why:
      "docker parameters outside the allow-list are refused by name (volumes-from would mount another container's " +
      "volumes; lxc-conf no longer exists) rather than passed on to fail at docker run",
  },
  "30-dev-bigbusiness-role.json": {
    outcome: "refuse",
    refusedFields: ["role"],
    why:
      "with the default role * Marathon itself answers 422 at /role (valid: *, dev), as expected.json's note says; " +
      "with the scheduler's role set to slave_public, normalizeApp(x, {role: 'slave_public'}) accepts it",
  },
  "41-custom-executor.json": {
    outcome: "refuse",
    refusedFields: ["executor", "cpus"],
    why: "also names cpus 0.005: Docker cannot limit a container below 0.01 cpus",
  },
};

/** True when `path` is `field` or lies inside it (`env.PW.secret` is inside `env.PW`). */
function inside(path: string, field: string): boolean {
  return path === field || path.startsWith(`${field}.`) || path.startsWith(`${field}[`);
}

function sameFields(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().every((f, i) => f === [...b].sort()[i]);
}

/** The problem with Drover's answer for `input` against `want`, or undefined when it agrees. */
function disagreement(input: unknown, want: Expectation): string | undefined {
  const r = normalizeApp(input);
  if (want.outcome === "run") return r.ok ? undefined : `expected run, refused: ${JSON.stringify(r.issues)}`;
  if (r.ok) return `expected refuse (${want.refusedFields.join(", ")}), accepted`;
  const paths = r.issues.map((i) => i.path);
  const unnamed = want.refusedFields.filter((f) => !paths.some((p) => inside(p, f)));
  const extra = r.issues.filter((i) => !want.refusedFields.some((f) => inside(i.path, f)));
  if (unnamed.length > 0 || extra.length > 0)
    return `fields not named: ${JSON.stringify(unnamed)}; issues on other fields: ${JSON.stringify(extra)}`;
  return undefined;
}

describe("the Marathon corpus (integration-tests/corpus/marathon)", () => {
  // The corpus is part of the repository: without it this test must fail, not pass empty.
  assert.ok(
    existsSync(new URL("expected.json", CORPUS)),
    "integration-tests/corpus/marathon/expected.json is missing",
  );
  const expected = JSON.parse(readFileSync(new URL("expected.json", CORPUS), "utf8")) as Record<
    string,
    Expectation
  >;
  const files = readdirSync(CORPUS)
    .filter((f) => f.endsWith(".json") && f !== "expected.json")
    .sort();

  it("expected.json covers every file, and every decision names a file", () => {
    assert.deepEqual(Object.keys(expected).sort(), files);
    for (const f of Object.keys(DROVER_DECIDES)) assert.ok(files.includes(f), f);
  });

  for (const file of files) {
    const want = expected[file];
    const decided = DROVER_DECIDES[file];
    const title = decided === undefined ? file : `${file} (Drover decides otherwise: see DROVER_DECIDES)`;
    it(title, () => {
      assert.ok(want, `${file} is not in expected.json`);
      const input = JSON.parse(readFileSync(new URL(file, CORPUS), "utf8")) as unknown;
      if (decided === undefined) {
        assert.equal(disagreement(input, want), undefined);
        return;
      }
      assert.ok(
        !(decided.outcome === want.outcome && sameFields(decided.refusedFields, want.refusedFields)),
        `expected.json now agrees with Drover's decision for ${file}: remove it from DROVER_DECIDES`,
      );
      assert.equal(disagreement(input, decided), undefined);
    });
  }

  it("30-dev-bigbusiness-role.json runs when the scheduler's role is slave_public", () => {
    const input = JSON.parse(
      readFileSync(new URL("30-dev-bigbusiness-role.json", CORPUS), "utf8"),
    ) as unknown;
    assert.ok(normalizeApp(input, { role: "slave_public" }).ok);
  });
});
