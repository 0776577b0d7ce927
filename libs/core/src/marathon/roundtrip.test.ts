import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ALLOWED_DOCKER_PARAMETERS, normalizeApp, toMarathonJson } from "./app.js";
import type { AppDefinition } from "./types.js";

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,5}[a-z0-9])?$/);
const id = fc.array(label, { minLength: 1, maxLength: 3 }).map((s) => `/${s.join("/")}`);
const name = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/);
const text = fc.string({ maxLength: 12 });
const envName = fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,8}$/);
const stringMap = (key: fc.Arbitrary<string>) => fc.dictionary(key, text, { maxKeys: 3 });
const seconds = fc.integer({ min: 0, max: 100_000 });
const protocol = fc.constantFrom("tcp", "udp", "udp,tcp");
const port = fc.integer({ min: 0, max: 65535 });

/** Port settings for one networking mode, how many ports they give, and their names. */
type Net = {
  fields: Record<string, unknown>;
  ports: number;
  names: string[];
  docker: { portMappings?: unknown[] };
};

const networking: fc.Arbitrary<Net> = fc.oneof(
  // host: portDefinitions, or old `ports`, or the default
  fc
    .record({
      defs: fc.array(
        fc.record({ port, name: fc.option(name, { nil: undefined }), protocol, labels: stringMap(name) }),
        {
          maxLength: 3,
        },
      ),
      requirePorts: fc.option(fc.boolean(), { nil: undefined }),
      form: fc.constantFrom("portDefinitions", "ports", "default"),
    })
    .map(({ defs, requirePorts, form }): Net => {
      const named = uniqueNames(uniquePorts(defs));
      const required = requirePorts === undefined ? {} : { requirePorts };
      if (form === "default") return { fields: required, ports: 1, names: ["default"], docker: {} };
      if (form === "ports")
        return {
          fields: { ports: named.map((d) => d.port), ...required },
          ports: named.length,
          names: [],
          docker: {},
        };
      return {
        fields: { portDefinitions: named, ...required },
        ports: named.length,
        names: named.flatMap((d) => (d.name ? [d.name] : [])),
        docker: {},
      };
    }),
  // bridge or a named container network: container.portMappings (none given: the default one)
  fc
    .record({
      mode: fc.constantFrom("container/bridge", "container"),
      mappings: fc.array(
        fc.record({
          containerPort: port,
          hostPort: fc.option(port, { nil: undefined }),
          servicePort: port,
          name: fc.option(name, { nil: undefined }),
          protocol,
          labels: stringMap(name),
        }),
        { maxLength: 3 },
      ),
    })
    .map(({ mode, mappings }): Net => {
      const named = uniqueNames(mappings).map((m) => (m.hostPort === undefined ? dropKey(m, "hostPort") : m));
      return {
        fields: { networks: mode === "container" ? [{ mode, name: "net1" }] : [{ mode }] },
        ports: named.length === 0 ? 1 : named.length,
        names: named.length === 0 ? ["default"] : named.flatMap((m) => (m.name ? [m.name] : [])),
        docker: named.length === 0 ? {} : { portMappings: named },
      };
    }),
);

/** Makes repeated non-zero ports 0 (Marathon refuses them). */
function uniquePorts<T extends { port: number }>(items: T[]): T[] {
  const seen = new Set<number>();
  return items.map((item) => {
    if (item.port === 0) return item;
    if (seen.has(item.port)) return { ...item, port: 0 };
    seen.add(item.port);
    return item;
  });
}

function dropKey<T extends object, K extends keyof T>(o: T, k: K): Omit<T, K> {
  const { [k]: _, ...rest } = o;
  return rest;
}

/** Drops repeated names (Marathon refuses them) and undefined names. */
function uniqueNames<T extends { name?: string | undefined }>(items: T[]): T[] {
  const seen = new Set<string>();
  return items.map((item) => {
    if (item.name === undefined) return dropKey(item, "name") as T;
    if (seen.has(item.name)) return dropKey(item, "name") as T;
    seen.add(item.name);
    return item;
  });
}

const healthCheck = (ports: number) =>
  fc.record(
    {
      protocol: fc.constantFrom("HTTP", "HTTPS", "TCP", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"),
      portIndex: fc.integer({ min: 0, max: Math.max(0, ports - 1) }),
      path: fc.constantFrom("/", "/health"),
      gracePeriodSeconds: seconds,
      intervalSeconds: seconds,
      timeoutSeconds: seconds,
      maxConsecutiveFailures: fc.integer({ min: 0, max: 10 }),
      delaySeconds: seconds,
      ignoreHttp1xx: fc.boolean(),
    },
    { requiredKeys: ["protocol"] },
  );

const commandCheck = fc.record({
  protocol: fc.constant("COMMAND"),
  command: fc.record({ value: fc.constant("true") }),
});

const constraint = fc.constantFrom(
  ["hostname", "UNIQUE"],
  ["rack", "GROUP_BY", "3"],
  ["rack", "CLUSTER", "r1"],
  ["rack", "MAX_PER", "2"],
  ["zone", "LIKE", "z-[1-3]"],
  ["zone", "UNLIKE", "z-9"],
  ["@region", "IS", "eu"],
  "rack:GROUP_BY",
);

const upgrade = fc.record({
  maximumOverCapacity: fc.double({ min: 0, max: 1, noNaN: true }),
  minimumHealthCapacity: fc.double({ min: 0, max: 1, noNaN: true }),
});

const unreachable = fc.oneof(
  fc.constant("disabled"),
  fc
    .tuple(seconds, seconds)
    .map(([a, b]) => ({ inactiveAfterSeconds: Math.min(a, b), expungeAfterSeconds: Math.max(a, b) })),
);

const dockerParameter = fc
  .constantFrom(...ALLOWED_DOCKER_PARAMETERS)
  .map((key) => ({ key, value: key === "env" ? "A=1" : "v" }));

/** A Marathon app definition Drover accepts, in Marathon's JSON (some fields in their old forms). */
const validApp = networking.chain((net) =>
  fc
    .record(
      {
        id,
        run: fc.constantFrom("cmd", "args", "image"),
        image: fc.constantFrom("nginx:1.27", "busybox", "registry.local:5000/team/app@sha256:abc"),
        cpus: fc.double({ min: 0.01, max: 64, noNaN: true }),
        mem: fc.double({ min: 6, max: 65536, noNaN: true }),
        disk: fc.double({ min: 0, max: 1000, noNaN: true }),
        instances: fc.integer({ min: 0, max: 1000 }),
        env: fc.dictionary(envName, text, { maxKeys: 3 }),
        labels: stringMap(
          fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_.-]{0,8}$/).filter((k) => !k.startsWith("drover.")),
        ),
        constraints: fc.array(constraint, { maxLength: 3 }),
        healthChecks: fc.array(
          net.ports > 0 ? fc.oneof(healthCheck(net.ports), commandCheck) : commandCheck,
          {
            maxLength: 2,
          },
        ),
        readiness: fc.boolean(),
        upgradeStrategy: upgrade,
        unreachableStrategy: unreachable,
        killSelection: fc.constantFrom("YOUNGEST_FIRST", "OLDEST_FIRST"),
        backoffSeconds: seconds,
        backoffFactor: fc.double({ min: 1, max: 10, noNaN: true }),
        maxLaunchDelaySeconds: seconds,
        taskKillGracePeriodSeconds: seconds,
        fetch: fc.array(
          fc.record(
            {
              uri: fc.constantFrom("http://a/x.tgz", "https://b/run.sh"),
              executable: fc.boolean(),
              cache: fc.boolean(),
              destPath: fc.constant("out"),
            },
            { requiredKeys: ["uri"] },
          ),
          { maxLength: 2 },
        ),
        uris: fc.array(fc.constantFrom("http://a/x.zip", "http://b/y"), { maxLength: 2 }),
        dependencies: fc.array(id, { maxLength: 2 }),
        user: fc.constantFrom("nobody", "root"),
        tty: fc.boolean(),
        privileged: fc.boolean(),
        parameters: fc.array(dockerParameter, { maxLength: 3 }),
        volumes: fc.array(
          fc.record({
            containerPath: fc.constantFrom("/data", "/logs"),
            hostPath: fc.constantFrom("/var/data", "logs"),
            mode: fc.constantFrom("RO", "RW"),
          }),
          { maxLength: 2 },
        ),
        resourceLimits: fc.record(
          { cpus: fc.constant("unlimited"), mem: fc.constant(1_000_000) },
          { requiredKeys: [] },
        ),
        acceptedResourceRoles: fc.constant(["*"]),
      },
      {
        requiredKeys: ["id", "run", "image"],
      },
    )
    .map((r) => {
      const { run, image, readiness, privileged, parameters, volumes, uris, fetch, healthChecks, ...rest } =
        r;
      const withImage =
        run !== "cmd" ||
        net.docker.portMappings !== undefined ||
        parameters !== undefined ||
        privileged !== undefined;
      const app: Record<string, unknown> = { ...rest, ...net.fields };
      if (run === "cmd") app.cmd = "sleep 100";
      if (run === "args") app.args = ["serve", "--port", "$PORT0"];
      if (withImage || volumes !== undefined)
        app.container = {
          docker: {
            image,
            ...(privileged !== undefined ? { privileged } : {}),
            ...(parameters !== undefined ? { parameters } : {}),
          },
          ...(net.docker.portMappings !== undefined ? { portMappings: net.docker.portMappings } : {}),
          ...(volumes !== undefined ? { volumes } : {}),
        };
      if (fetch !== undefined) app.fetch = fetch;
      else if (uris !== undefined) app.uris = uris;
      if (healthChecks !== undefined) app.healthChecks = healthChecks.filter(oneMesosCheck());
      const portName = net.names[0];
      if (readiness && portName !== undefined)
        app.readinessChecks = [{ portName, intervalSeconds: 30, timeoutSeconds: 5 }];
      return app;
    }),
);

/** Keeps at most one MESOS_HTTP / MESOS_HTTPS / MESOS_TCP check (Marathon's rule). */
function oneMesosCheck(): (hc: { protocol: string }) => boolean {
  let seen = false;
  return (hc) => {
    if (!hc.protocol.startsWith("MESOS_")) return true;
    if (seen) return false;
    seen = true;
    return true;
  };
}

function accepted(input: unknown): AppDefinition {
  const r = normalizeApp(input);
  if (!r.ok) assert.fail(`rejected ${JSON.stringify(input)}: ${JSON.stringify(r.issues)}`);
  return r.value;
}

describe("round trip", () => {
  it("the generator makes definitions Drover accepts, of every kind", () => {
    fc.assert(
      fc.property(validApp, (app) => void accepted(app)),
      { numRuns: 200 },
    );
    const seen = new Set<string>();
    for (const app of fc.sample(validApp, { numRuns: 300, seed: 20261129 })) {
      const def = accepted(app);
      seen.add(`network:${def.networks[0]?.mode}`);
      if ("ports" in app) seen.add("old ports");
      if ("uris" in app) seen.add("old uris");
      if (def.requirePorts) seen.add("requirePorts");
      if (def.container?.docker !== undefined) seen.add("image");
      if (def.args !== undefined) seen.add("args");
      if (def.cmd !== undefined) seen.add("cmd");
      if ((def.container?.portMappings ?? []).length > 1) seen.add("several mappings");
      if (def.healthChecks.some((h) => h.protocol === "COMMAND")) seen.add("command check");
      if (def.healthChecks.some((h) => h.protocol.startsWith("MESOS_"))) seen.add("mesos check");
      if (def.healthChecks.some((h) => h.protocol === "HTTP")) seen.add("http check");
      if (def.readinessChecks.length > 0) seen.add("readiness");
      if (def.unreachableStrategy === "disabled") seen.add("unreachable disabled");
      if ((def.container?.volumes ?? []).length > 0) seen.add("volumes");
      if (def.constraints.length > 0) seen.add("constraints");
    }
    for (const kind of [
      "network:host",
      "network:container/bridge",
      "network:container",
      "old ports",
      "old uris",
      "requirePorts",
      "image",
      "args",
      "cmd",
      "several mappings",
      "command check",
      "mesos check",
      "http check",
      "readiness",
      "unreachable disabled",
      "volumes",
      "constraints",
    ])
      assert.ok(seen.has(kind), kind);
  });

  it("normalizeApp(toMarathonJson(x)) == x, through JSON text", () => {
    fc.assert(
      fc.property(validApp, (app) => {
        const def = accepted(app);
        const printed = JSON.parse(JSON.stringify(toMarathonJson(def))) as unknown;
        assert.deepEqual(accepted(printed), def);
        // Printing is stable too: the canonical form prints the same text again.
        assert.equal(JSON.stringify(toMarathonJson(accepted(printed))), JSON.stringify(toMarathonJson(def)));
      }),
      { numRuns: 300 },
    );
  });

  it("the printed form has no deprecated field", () => {
    fc.assert(
      fc.property(validApp, (app) => {
        const json = toMarathonJson(accepted(app));
        for (const key of ["ports", "uris", "ipAddress"]) assert.equal(key in json, false, key);
        const container = json.container as { docker?: Record<string, unknown> } | undefined;
        assert.equal(container?.docker !== undefined && "network" in container.docker, false);
        assert.equal(container?.docker !== undefined && "portMappings" in container.docker, false);
      }),
      { numRuns: 100 },
    );
  });
});
