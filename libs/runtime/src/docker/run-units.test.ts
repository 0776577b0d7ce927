/** The pure parts of Marathon's app model in Docker: parameters, port bindings, networks, binds, the plan. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ALLOWED_DOCKER_PARAMETERS } from "@drover/core";
import type { TaskLaunchSpec } from "../executor.js";
import { LABEL_TASK_ID } from "./labels.js";
import { dockerParameters, parseBytes, parseUlimit, SUPPORTED_DOCKER_PARAMETERS } from "./parameters.js";
import {
  type ContainerPlan,
  containerAddressesOf,
  containerIpOf,
  containerPathOf,
  mappedPortBindings,
  networkPlan,
  planContainer,
  runProblem,
  SANDBOX_PATH,
  volumeBinds,
  workingDirOf,
} from "./spec.js";

const spec = (over: Partial<TaskLaunchSpec> = {}): TaskLaunchSpec => ({
  taskId: "web.1",
  appId: "/web",
  frameworkId: "fw-1",
  agentId: "agent-1",
  image: "drover/busybox:1",
  cpus: 0.5,
  mem: 64,
  env: {},
  labels: {},
  ...over,
});

const SANDBOX = "/var/lib/drover/agent/sandboxes/drover-web.1";
const ctx = { agentId: "agent-1", extraLabels: {}, sandboxHostPath: SANDBOX, containerName: "drover-web.1" };

function plan(over: Partial<TaskLaunchSpec> = {}): ContainerPlan {
  const p = planContainer(spec(over), ctx);
  if ("error" in p) assert.fail(p.error);
  return p;
}

describe("docker parameters", () => {
  test("each supported flag lands on its create option; repeated flags accumulate", () => {
    const r = dockerParameters([
      { key: "label", value: "team=web" },
      { key: "label", value: "bare" },
      { key: "env", value: "A=1=2" },
      { key: "volume", value: "/srv:/srv:ro" },
      { key: "hostname", value: "box" },
      { key: "cap-add", value: "NET_ADMIN" },
      { key: "cap-add", value: "SYS_TIME" },
      { key: "cap-drop", value: "MKNOD" },
      { key: "ulimit", value: "nofile=1024:2048" },
      { key: "ulimit", value: "nproc=64" },
      { key: "add-host", value: "db:10.0.0.5" },
      { key: "dns", value: "1.1.1.1" },
      { key: "dns-search", value: "example.org" },
      { key: "workdir", value: "/app" },
      { key: "memory-swap", value: "-1" },
      { key: "shm-size", value: "64m" },
      { key: "log-driver", value: "json-file" },
      { key: "log-opt", value: "max-size=10m" },
      { key: "log-opt", value: "max-file=3" },
      { key: "user", value: "1000:1000" },
      { key: "security-opt", value: "no-new-privileges" },
      { key: "sysctl", value: "net.core.somaxconn=1024" },
      { key: "init", value: "false" },
      { key: "read-only", value: "true" },
      { key: "tmpfs", value: "/run:rw,size=64m" },
      { key: "tmpfs", value: "/scratch" },
      { key: "device", value: "/dev/fuse" },
      { key: "group-add", value: "audio" },
      { key: "stop-signal", value: "SIGINT" },
    ]);
    assert.ok(r.ok, r.ok ? "" : r.message);
    const e = r.effects;
    assert.deepEqual(e.labels, { team: "web", bare: "" });
    assert.deepEqual(e.env, ["A=1=2"]);
    assert.deepEqual(e.binds, ["/srv:/srv:ro"]);
    assert.deepEqual(e.config, {
      Hostname: "box",
      WorkingDir: "/app",
      User: "1000:1000",
      StopSignal: "SIGINT",
    });
    assert.deepEqual(e.host, {
      CapAdd: ["NET_ADMIN", "SYS_TIME"],
      CapDrop: ["MKNOD"],
      Ulimits: [
        { Name: "nofile", Soft: 1024, Hard: 2048 },
        { Name: "nproc", Soft: 64, Hard: 64 },
      ],
      ExtraHosts: ["db:10.0.0.5"],
      Dns: ["1.1.1.1"],
      DnsSearch: ["example.org"],
      MemorySwap: -1,
      ShmSize: 64 * 1024 * 1024,
      LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } },
      SecurityOpt: ["no-new-privileges"],
      Sysctls: { "net.core.somaxconn": "1024" },
      Init: false,
      ReadonlyRootfs: true,
      Tmpfs: { "/run": "rw,size=64m", "/scratch": "" },
      Devices: [{ PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm" }],
      GroupAdd: ["audio"],
    });
  });

  test("the flags the brief names are all supported", () => {
    for (const k of [
      "label",
      "env",
      "volume",
      "hostname",
      "cap-add",
      "cap-drop",
      "ulimit",
      "add-host",
      "dns",
      "workdir",
      "memory-swap",
      "shm-size",
      "log-driver",
      "log-opt",
      "user",
      "security-opt",
      "sysctl",
      "init",
      "read-only",
      "tmpfs",
    ])
      assert.ok(SUPPORTED_DOCKER_PARAMETERS.includes(k), k);
  });

  test("every key the app definition accepts (core's ALLOWED_DOCKER_PARAMETERS) is mapped here", () => {
    for (const k of ALLOWED_DOCKER_PARAMETERS) assert.ok(SUPPORTED_DOCKER_PARAMETERS.includes(k), k);
    assert.deepEqual(
      dockerParameters([
        { key: "pids-limit", value: "100" },
        { key: "memory-swappiness", value: "0" },
      ]),
      {
        ok: true,
        effects: {
          labels: {},
          env: [],
          binds: [],
          config: {},
          host: { PidsLimit: 100, MemorySwappiness: 0 },
        },
      },
    );
  });

  test("unknown keys are refused, every one named once; nothing else is reported first", () => {
    assert.deepEqual(dockerParameters([{ key: "net", value: "host" }]), {
      ok: false,
      message: "container.docker.parameters: net not supported",
    });
    assert.deepEqual(
      dockerParameters([
        { key: "shm-size", value: "nonsense" },
        { key: "publish", value: "80:80" },
        { key: "--label", value: "a=b" },
        { key: "publish", value: "81:81" },
      ]),
      { ok: false, message: "container.docker.parameters: publish, --label not supported" },
    );
    // Names of Object.prototype are not flags.
    assert.equal(dockerParameters([{ key: "constructor", value: "" }]).ok, false);
  });

  test("unreadable values are refused with key, value and reason", () => {
    for (const [key, value, reason] of [
      ["ulimit", "nofile", /name=soft\[:hard\]/],
      ["ulimit", "bogus=1", /unknown ulimit bogus/],
      ["ulimit", "nofile=10:5", /soft limit exceeds/],
      ["memory-swap", "lots", /size/],
      ["shm-size", "0", /positive/],
      ["init", "maybe", /true or false/],
      ["env", "NOVALUE", /NAME=value/],
      ["env", "=x", /NAME=value/],
      ["add-host", "nocolon", /host:ip/],
      ["volume", "/only-one", /container-path/],
      ["workdir", "relative", /absolute/],
      ["tmpfs", "run", /absolute/],
      ["device", "fuse", /host\/device/],
      ["hostname", " ", /empty/],
    ] as const) {
      const r = dockerParameters([{ key, value }]);
      assert.equal(r.ok, false, `${key}=${value}`);
      if (!r.ok) {
        assert.ok(r.message.startsWith(`container.docker.parameters: ${key}=${value}: `), r.message);
        assert.match(r.message, reason);
      }
    }
  });

  test("sizes and ulimits read as docker run reads them", () => {
    assert.equal(parseBytes("4096"), 4096);
    assert.equal(parseBytes("1k"), 1024);
    assert.equal(parseBytes("1.5g"), 1.5 * 1024 ** 3);
    assert.equal(parseBytes("512MiB"), 512 * 1024 ** 2);
    assert.equal(parseBytes("2GB"), 2 * 1024 ** 3);
    assert.deepEqual(parseUlimit("core=-1"), { Name: "core", Soft: -1, Hard: -1 });
    assert.deepEqual(parseUlimit("nofile=100:-1"), { Name: "nofile", Soft: 100, Hard: -1 });
  });
});

describe("ports and networks", () => {
  test("port mappings: containerPort 0 is the host port, udp,tcp publishes both, hostPort 0 is only exposed", () => {
    const { ExposedPorts, PortBindings } = mappedPortBindings([
      { containerPort: 8080, hostPort: 31001, protocol: "tcp" },
      { containerPort: 0, hostPort: 31002, protocol: "udp,tcp" },
      { containerPort: 9000, hostPort: 0, protocol: "tcp" },
      { containerPort: 8080, hostPort: 31003, protocol: "tcp" },
      { containerPort: 0, hostPort: 0, protocol: "tcp" },
    ]);
    assert.deepEqual(PortBindings, {
      "8080/tcp": [{ HostPort: "31001" }, { HostPort: "31003" }],
      "31002/udp": [{ HostPort: "31002" }],
      "31002/tcp": [{ HostPort: "31002" }],
    });
    assert.deepEqual(Object.keys(ExposedPorts).sort(), ["31002/tcp", "31002/udp", "8080/tcp", "9000/tcp"]);
  });

  test("host networking stays Docker's default network with same-port publishing", () => {
    for (const run of [undefined, { network: { mode: "host" as const } }]) {
      const p = networkPlan({ ports: [31000], run });
      assert.ok(!("error" in p));
      assert.equal(p.NetworkMode, undefined);
      assert.equal(p.networkName, undefined);
      assert.deepEqual(p.PortBindings, {
        "31000/tcp": [{ HostPort: "31000" }],
        "31000/udp": [{ HostPort: "31000" }],
      });
    }
  });

  test("bridge uses Docker's bridge with the mappings; container joins the named network", () => {
    const portMappings = [{ containerPort: 80, hostPort: 31005, protocol: "tcp" as const }];
    const bridge = networkPlan({ ports: [31005], run: { network: { mode: "bridge" }, portMappings } });
    assert.deepEqual(bridge, {
      NetworkMode: "bridge",
      networkName: undefined,
      ExposedPorts: { "80/tcp": {} },
      PortBindings: { "80/tcp": [{ HostPort: "31005" }] },
    });
    const named = networkPlan({ run: { network: { mode: "container", name: "dev-net" }, portMappings } });
    assert.ok(!("error" in named));
    assert.equal(named.NetworkMode, "dev-net");
    assert.equal(named.networkName, "dev-net");
    // Without port mappings, the task's host ports are published as with host networking.
    const bare = networkPlan({ ports: [31006], run: { network: { mode: "bridge" } } });
    assert.ok(!("error" in bare));
    assert.deepEqual(Object.keys(bare.PortBindings).sort(), ["31006/tcp", "31006/udp"]);
  });

  test("a container network needs a user-defined name", () => {
    assert.deepEqual(networkPlan({ run: { network: { mode: "container" } } }), {
      error: "run.network: container networking needs the name of a network",
    });
    assert.match(
      (networkPlan({ run: { network: { mode: "container", name: "host" } } }) as { error: string }).error,
      /not a user-defined network/,
    );
  });

  test("the container's address is reported for bridge and named networks only", () => {
    const nets = { bridge: { IPAddress: "172.17.0.4" }, "dev-net": { IPAddress: "10.9.0.2" } };
    assert.equal(containerIpOf("bridge", nets), "172.17.0.4");
    assert.equal(containerIpOf("dev-net", nets), "10.9.0.2");
    assert.equal(containerIpOf("default", nets), undefined);
    assert.equal(containerIpOf("host", nets), undefined);
    assert.equal(containerIpOf(undefined, nets), undefined);
    assert.equal(containerIpOf("other", nets), undefined);
    assert.equal(containerIpOf("bridge", { bridge: { IPAddress: "" } }), undefined);
  });

  test("the task's ipAddresses: every network's IPv4 and global IPv6 (own network first), the host's for host networking", () => {
    const nets = {
      "a-net": { IPAddress: "10.9.0.2", GlobalIPv6Address: "" },
      bridge: { IPAddress: "172.17.0.4", GlobalIPv6Address: "fd00:dead::4" },
      broken: { IPAddress: "not-an-ip" },
      empty: undefined,
    };
    assert.deepEqual(containerAddressesOf("bridge", nets), ["172.17.0.4", "fd00:dead::4", "10.9.0.2"]);
    assert.deepEqual(containerAddressesOf("a-net", nets), ["10.9.0.2", "172.17.0.4", "fd00:dead::4"]);
    assert.deepEqual(containerAddressesOf("bridge", { bridge: { IPAddress: "" } }), []);
    assert.deepEqual(containerAddressesOf("bridge", undefined), []);
    // Host networking (Docker's host mode, and its default mode, which is Drover's host networking).
    for (const mode of ["host", "default", "", undefined]) {
      assert.deepEqual(containerAddressesOf(mode, nets), [], String(mode));
      assert.deepEqual(containerAddressesOf(mode, nets, "192.168.1.20"), ["192.168.1.20"], String(mode));
    }
    assert.deepEqual(containerAddressesOf("host", nets, "node-a.example"), [], "a hostname is no address");
    assert.deepEqual(containerAddressesOf("none", nets, "192.168.1.20"), []);
    assert.deepEqual(containerAddressesOf("container:abc", nets, "192.168.1.20"), []);
    const lots = Object.fromEntries(
      Array.from({ length: 12 }, (_, i) => [`n${i}`, { IPAddress: `10.0.${i}.1` }]),
    );
    assert.equal(containerAddressesOf("n3", lots).length, 8);
    assert.equal(containerAddressesOf("n3", lots)[0], "10.0.3.1");
  });
});

describe("volumes", () => {
  test("host paths bind RO/RW; relative container paths are in the sandbox", () => {
    const r = volumeBinds(
      [
        { containerPath: "/etc/app", hostPath: "/srv/app/conf/", mode: "RO" },
        { containerPath: "logs", hostPath: "/var/log/app", mode: "RW" },
        { containerPath: "/cache", hostPath: "cache", mode: "RW" },
      ],
      SANDBOX,
    );
    assert.deepEqual(r, {
      binds: [
        "/srv/app/conf/:/etc/app:ro",
        `/var/log/app:${SANDBOX_PATH}/logs:rw`,
        `${SANDBOX}/cache:/cache:rw`,
      ],
      persistent: [],
    });
  });

  test("persistent volumes are named volumes; a relative hostPath naming one mounts it again", () => {
    const r = volumeBinds(
      [
        { containerPath: "pgdata", mode: "RW", persistent: { name: "web-pgdata-1", sizeMib: 100 } },
        { containerPath: "/var/lib/postgresql/data", hostPath: "pgdata", mode: "RW" },
        { containerPath: "/abs", mode: "RW", persistent: { name: "web-abs-1", sizeMib: 5 } },
      ],
      SANDBOX,
    );
    assert.deepEqual(r, {
      binds: [
        `web-pgdata-1:${SANDBOX_PATH}/pgdata:rw`,
        "web-pgdata-1:/var/lib/postgresql/data:rw",
        "web-abs-1:/abs:rw",
      ],
      persistent: [
        { name: "web-pgdata-1", sizeMib: 100, containerPath: `${SANDBOX_PATH}/pgdata` },
        { name: "web-abs-1", sizeMib: 5, containerPath: "/abs" },
      ],
    });
  });

  test("paths that leave the sandbox, contain ':' or name no source are refused by field", () => {
    const cases: [Parameters<typeof volumeBinds>[0], RegExp][] = [
      [[{ containerPath: "../x", hostPath: "/a", mode: "RO" }], /^run\.volumes\.0\.containerPath: .*escapes/],
      [[{ containerPath: "/x", hostPath: "../../etc", mode: "RO" }], /^run\.volumes\.0\.hostPath: .*escapes/],
      [[{ containerPath: "/x", hostPath: "/a:b", mode: "RO" }], /^run\.volumes\.0\.hostPath: ':'/],
      [[{ containerPath: "/x:y", hostPath: "/a", mode: "RO" }], /^run\.volumes\.0\.containerPath: ':'/],
      [[{ containerPath: "/x", mode: "RO" }], /^run\.volumes\.0: needs a hostPath or persistent/],
      [
        [{ containerPath: "/x", mode: "RW", persistent: { name: "a/b", sizeMib: 1 } }],
        /^run\.volumes\.0\.persistent\.name: a\/b is not a valid Docker volume name/,
      ],
      [
        [{ containerPath: "/x", hostPath: "/h", mode: "RW", persistent: { name: "ab", sizeMib: 1 } }],
        /not both/,
      ],
    ];
    for (const [volumes, message] of cases) {
      const r = volumeBinds(volumes, SANDBOX);
      assert.ok("error" in r, JSON.stringify(volumes));
      assert.match(r.error, message);
    }
    assert.equal(containerPathOf("a/../b"), `${SANDBOX_PATH}/b`);
    assert.equal(containerPathOf("."), undefined);
  });
});

describe("the container plan", () => {
  test("sandbox bind first, MESOS_SANDBOX, limits, init, privileged, user", () => {
    const p = plan({
      env: { A: "1", MESOS_SANDBOX: "/elsewhere" },
      ports: [31000],
      run: { privileged: true, user: "nobody" },
    });
    const o = p.options;
    assert.equal(o.name, "drover-web.1");
    assert.deepEqual(o.Env, ["A=1", `MESOS_SANDBOX=${SANDBOX_PATH}`]);
    assert.equal(o.User, "nobody");
    assert.deepEqual(o.HostConfig.Binds, [`${SANDBOX}:${SANDBOX_PATH}:rw`]);
    assert.equal(o.HostConfig.Privileged, true);
    assert.equal(o.HostConfig.Init, true);
    assert.equal(o.HostConfig.NanoCpus, 500_000_000);
    assert.equal(o.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(o.HostConfig.MemorySwap, 64 * 1024 * 1024);
    assert.equal(o.HostConfig.NetworkMode, undefined);
    assert.equal("Privileged" in plan().options.HostConfig, false);
  });

  test("resourceLimits raise or lift the limits, the request stays a reservation; tty", () => {
    const raised = plan({ run: { limits: { cpus: 2, mem: 256 }, tty: true } }).options;
    assert.equal(raised.HostConfig.NanoCpus, 2_000_000_000);
    assert.equal(raised.HostConfig.CpuShares, 512);
    assert.equal(raised.HostConfig.Memory, 256 * 1024 * 1024);
    assert.equal(raised.HostConfig.MemoryReservation, 64 * 1024 * 1024);
    assert.equal(raised.Tty, true);
    const lifted = plan({ run: { limits: { cpus: "unlimited", mem: "unlimited" } } }).options;
    assert.equal(lifted.HostConfig.NanoCpus, 0);
    assert.equal(lifted.HostConfig.Memory, 0);
    assert.equal(lifted.HostConfig.MemorySwap, -1);
    const plain = plan().options;
    assert.equal("CpuShares" in plain.HostConfig, false);
    assert.equal("MemoryReservation" in plain.HostConfig, false);
    assert.equal(plain.Tty, undefined);
  });

  test("parameters override the defaults they name; drover labels still win", () => {
    const p = plan({
      env: { A: "1" },
      labels: { team: "a" },
      run: {
        user: "nobody",
        dockerParameters: [
          { key: "user", value: "0" },
          { key: "env", value: "A=2" },
          { key: "label", value: `${LABEL_TASK_ID}=evil` },
          { key: "label", value: "team=b" },
          { key: "memory-swap", value: "1g" },
          { key: "init", value: "false" },
          { key: "volume", value: "/srv:/srv:ro" },
        ],
      },
    });
    const o = p.options;
    assert.equal(o.User, "0");
    assert.deepEqual(o.Env, ["A=1", `MESOS_SANDBOX=${SANDBOX_PATH}`, "A=2"]);
    assert.equal(o.Labels[LABEL_TASK_ID], "web.1");
    assert.equal(o.Labels.team, "b");
    assert.equal(o.HostConfig.MemorySwap, 1024 ** 3);
    assert.equal(o.HostConfig.Init, false);
    assert.deepEqual(o.HostConfig.Binds, [`${SANDBOX}:${SANDBOX_PATH}:rw`, "/srv:/srv:ro"]);
  });

  test("working dir: the workdir parameter, else the image's, else the sandbox", () => {
    assert.equal(workingDirOf(plan(), ""), SANDBOX_PATH);
    assert.equal(workingDirOf(plan(), undefined), SANDBOX_PATH);
    assert.equal(workingDirOf(plan(), "/app"), undefined);
    const withParam = plan({ run: { dockerParameters: [{ key: "workdir", value: "/w" }] } });
    assert.equal(workingDirOf(withParam, "/app"), "/w");
  });

  test("a plan that cannot be made names the field; runProblem says the same", () => {
    const bad = spec({ run: { dockerParameters: [{ key: "pid", value: "host" }] } });
    assert.deepEqual(planContainer(bad, ctx), { error: "container.docker.parameters: pid not supported" });
    assert.equal(runProblem(bad), "container.docker.parameters: pid not supported");
    assert.equal(
      runProblem(spec({ run: { network: { mode: "container" } } })),
      "run.network: container networking needs the name of a network",
    );
    assert.equal(runProblem(spec({ run: { network: { mode: "bridge" }, privileged: true } })), undefined);
  });
});
