/**
 * Marathon's `/v2/events` on a real cluster (etcd, NATS, master, scheduler, agent, Docker): the
 * scheduler's events plugin (eventsRoutes) is served by a fastify instance of this test, reading
 * the cluster's NATS as a scheduler replica does, and read by plain node:http SSE clients.
 *
 * - a new app is a deployment (deployment_info with StartApplication, ScaleApplication; its task
 *   runs; deployment_success); a change of its definition is api_post_event, deployment_info,
 *   status_update_event TASK_RUNNING of the new version (with its host, agent and ports) and that
 *   deployment's deployment_success, in that order; `event_type` filters; `drover events --marathon`;
 * - a client resuming with Last-Event-ID gets every later event exactly once (compared with a client
 *   that never left);
 * - a client that stops reading is disconnected with a final comment saying why;
 * - a follower scheduler's own HTTP server serves the stream (not forwarded), and the delay from a
 *   task status's commit to its status_update_event at the client is measured.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type Bus, connectBus } from "@drover/bus";
import { createLogger, type Logger } from "@drover/common";
import { eventsRoutes } from "@drover/scheduler/http/events";
import Fastify, { type FastifyInstance } from "fastify";
import {
  type Cluster,
  httpUrlOf,
  repoRoot,
  startCluster,
  waitFor,
  withClusterLogs,
} from "./harness/index.js";

interface SseFrame {
  id?: string;
  event?: string;
  data?: Record<string, unknown>;
  comment?: string;
}

/** A plain SSE client over node:http: frames as they arrive, comments kept apart. */
class SseClient {
  readonly frames: SseFrame[] = [];
  readonly comments: string[] = [];
  ended = false;
  private buf = "";
  private constructor(
    readonly res: http.IncomingMessage,
    private readonly req: http.ClientRequest,
  ) {
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => this.take(chunk));
    res.on("end", () => {
      this.ended = true;
    });
    res.on("close", () => {
      this.ended = true;
    });
  }

  static connect(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    return new Promise((resolve, reject) => {
      const req = http.get(url, { headers: { Accept: "text/event-stream", ...headers } }, (res) =>
        resolve(new SseClient(res, req)),
      );
      req.on("error", reject);
    });
  }

  private take(chunk: string): void {
    this.buf += chunk;
    for (;;) {
      const end = this.buf.indexOf("\n\n");
      if (end === -1) return;
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      const f: SseFrame = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) f.comment = (f.comment ? `${f.comment}\n` : "") + line.slice(2);
        else if (line.startsWith("id: ")) f.id = line.slice(4);
        else if (line.startsWith("event: ")) f.event = line.slice(7);
        else if (line.startsWith("data: ")) f.data = JSON.parse(line.slice(6)) as Record<string, unknown>;
      }
      if (f.comment !== undefined && f.event === undefined) this.comments.push(f.comment);
      else this.frames.push(f);
    }
  }

  /** Waits until `pred` holds of the frames so far (deadline 60 s), and returns its value. */
  until<T>(
    what: string,
    pred: (frames: SseFrame[]) => T | undefined | false,
    timeoutMs = 60_000,
  ): Promise<T> {
    return waitFor(
      what,
      async () => {
        const v = pred(this.frames);
        if (!v && this.ended) throw new Error(`stream ended; comments: ${this.comments.join(" | ")}`);
        return v;
      },
      { timeoutMs, intervalMs: 50 },
    );
  }

  close(): void {
    this.req.destroy();
  }
}

let cluster: Cluster | undefined;
let bus: Bus | undefined;
let server: FastifyInstance | undefined;
let base = "";
let dir = "";
const slowWarnings: string[] = [];
const clients: SseClient[] = [];

/** A logger that also records the plugin's slow-consumer warnings. */
function recordingLogger(inner: Logger): Logger {
  return {
    debug: (m, f) => inner.debug(m, f),
    info: (m, f) => inner.info(m, f),
    warn: (m, f) => {
      if (m.includes("slow consumer")) slowWarnings.push(m);
      inner.warn(m, f);
    },
    error: (m, f) => inner.error(m, f),
    child: () => recordingLogger(inner),
  };
}

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

async function connect(query = "", headers: Record<string, string> = {}): Promise<SseClient> {
  const c = await SseClient.connect(`${base}/v2/events${query}`, headers);
  clients.push(c);
  return c;
}

async function appFile(name: string, def: Record<string, unknown>): Promise<string> {
  const file = join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify(def));
  return file;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-events-"));
  // A host port range of its own: other clusters on this machine hold ports of the default range.
  cluster = await startCluster({
    schedulers: 2,
    agents: 1,
    agentEnv: () => ({ DROVER_AGENT_PORTS: "36100-36199" }),
  });
  const log = recordingLogger(createLogger("events-test", "warn"));
  bus = await connectBus([cluster.infra.natsUrl], "events-test", log);
  server = Fastify();
  // Small bounds so that a slow consumer is found with a few MB of events; a short heartbeat.
  await server.register(eventsRoutes({ bus, log, heartbeatMs: 300, maxBufferedBytes: 1024 * 1024 }));
  await server.listen({ host: "127.0.0.1", port: 0 });
  base = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const c of clients) c.close();
  await server?.close();
  await bus?.close();
  await cluster?.stop();
});

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

const indexOf = (frames: SseFrame[], pred: (f: SseFrame) => boolean) => frames.findIndex(pred);
const isApp = (id: string) => (f: SseFrame) => {
  const d = f.data ?? {};
  if (d.appId === id) return true;
  const plan = d.plan as { steps?: { actions?: { app?: string }[] }[] } | undefined;
  return plan?.steps?.some((s) => s.actions?.some((a) => a.app === id)) ?? false;
};

test(
  "an app's tasks and its update's deployment are announced in order, event_type filters, Last-Event-ID resumes without loss or duplicates, drover events --marathon prints the same",
  { timeout: 300_000 },
  () =>
    withLogs(async () => {
      const all = await connect();
      assert.equal(all.res.statusCode, 200);
      assert.match(String(all.res.headers["content-type"]), /^text\/event-stream/);
      assert.equal(all.res.headers["x-accel-buffering"], "no");
      assert.match(String(all.res.headers["cache-control"]), /no-cache/);
      const filtered = await connect(
        "?event_type=deployment_info&event_type=status_update_event&event_type=deployment_success",
      );
      await all.until("event_stream_attached", (fs) => fs[0]?.event === "event_stream_attached");
      assert.equal(all.frames[0]?.id, undefined, "the attach event is not in the log: no id");

      const add = await current().cli([
        "app",
        "add",
        await appFile("web", {
          id: "/sse-web",
          cmd: "sleep 600",
          cpus: 0.1,
          mem: 32,
          instances: 1,
          portDefinitions: [{ port: 0 }],
        }),
        "--json",
      ]);
      assert.equal(add.code, 0, add.stderr);
      const isRunning = (f: SseFrame) =>
        f.event === "status_update_event" &&
        f.data?.appId === "/sse-web" &&
        f.data?.taskStatus === "TASK_RUNNING";
      // A new app is a deployment too (StartApplication, ScaleApplication): announced, its task runs,
      // it succeeds.
      await all.until("the first task of /sse-web running", (fs) => fs.some(isRunning));
      const firstTask = all.frames.find(isRunning)?.data?.taskId;
      await all.until("deployment_success of the create", (fs) =>
        fs.some((f) => f.event === "deployment_success" && isApp("/sse-web")(f)),
      );
      const createInfo = all.frames.find((f) => f.event === "deployment_info" && isApp("/sse-web")(f));
      assert.deepEqual(
        (createInfo?.data?.plan as { steps?: { actions?: { action?: string }[] }[] } | undefined)?.steps?.map(
          (st) => st.actions?.map((a) => a.action),
        ),
        [["StartApplication"], ["ScaleApplication"]],
      );

      // A change of its definition is a deployment: announced, its new task runs, it succeeds.
      const update = await current().cli([
        "app",
        "update",
        "/sse-web",
        await appFile("web-2", {
          id: "/sse-web",
          cmd: "sleep 601",
          cpus: 0.1,
          mem: 32,
          instances: 1,
          portDefinitions: [{ port: 0 }],
        }),
        "--detach",
      ]);
      assert.equal(update.code, 0, update.stderr);
      // The update's own deployment: the first deployment_info after its api_post_event.
      const postOf = (fs: SseFrame[]) =>
        indexOf(
          fs,
          (f) =>
            f.event === "api_post_event" &&
            f.data?.uri === "/v2/apps/sse-web" &&
            (f.data?.appDefinition as { cmd?: string } | undefined)?.cmd === "sleep 601",
        );
      const infoOf = (fs: SseFrame[]) =>
        fs.findIndex(
          (f, i) =>
            i > postOf(fs) && postOf(fs) >= 0 && f.event === "deployment_info" && isApp("/sse-web")(f),
        );
      const planId = (f: SseFrame | undefined) => (f?.data?.plan as { id?: string } | undefined)?.id;
      const success = (fs: SseFrame[]) => {
        const id = planId(fs[infoOf(fs)]);
        return id === undefined
          ? -1
          : fs.findIndex((f) => f.event === "deployment_success" && f.data?.id === id);
      };
      await all.until("deployment_success of /sse-web's update", (fs) => success(fs) >= 0);
      const fs = all.frames;
      const post = postOf(fs);
      const info = infoOf(fs);
      const running = indexOf(fs, (f) => isRunning(f) && f.data?.taskId !== firstTask);
      const done = success(fs);
      assert.ok(
        post >= 0 && info > post && running > info && done > running,
        `order: ${JSON.stringify(fs.map((f) => f.event))}`,
      );
      const newVersion = (fs[post]?.data?.appDefinition as { version?: string } | undefined)?.version;
      assert.equal(fs[running]?.data?.version, newVersion);
      assert.equal((fs[info]?.data?.plan as { version?: string } | undefined)?.version, newVersion);
      const su = fs[running]?.data ?? {};
      assert.equal(typeof su.slaveId, "string");
      assert.equal(typeof su.host, "string");
      assert.equal(typeof su.taskId, "string");
      assert.ok(Array.isArray(su.ports) && su.ports.length === 1, `ports: ${JSON.stringify(su.ports)}`);
      assert.equal(typeof su.version, "string");
      assert.equal(typeof su.timestamp, "string");
      assert.equal(su.eventType, "status_update_event");
      assert.ok(((fs[info]?.data?.plan as { steps?: unknown[] } | undefined)?.steps?.length ?? 0) >= 1);
      for (const f of fs.slice(1))
        assert.match(f.id ?? "", /^\d+(\.\d+)?$/, `every logged event has an id: ${f.event}`);
      // Ids increase along the stream.
      const key = (id: string) => id.split(".").map(Number);
      for (let i = 2; i < fs.length; i++) {
        const [a = 0, ao = Number.POSITIVE_INFINITY] = key(fs[i - 1]?.id ?? "");
        const [b = 0, bo = Number.POSITIVE_INFINITY] = key(fs[i]?.id ?? "");
        assert.ok(a < b || (a === b && ao < bo), `ids in order: ${fs[i - 1]?.id} then ${fs[i]?.id}`);
      }

      // The filtered client: only the types it named, in the same order as the unfiltered one.
      const doneId = fs[done]?.id;
      await filtered.until("filtered deployment_success", (f) => f.some((x) => x.id === doneId));
      const wantedTypes = new Set(["deployment_info", "status_update_event", "deployment_success"]);
      assert.ok(
        filtered.frames.every((f) => wantedTypes.has(f.event ?? "")),
        JSON.stringify(filtered.frames.map((f) => f.event)),
      );
      const upTo = (frames: SseFrame[]) => frames.slice(0, frames.findIndex((f) => f.id === doneId) + 1);
      assert.deepEqual(
        upTo(filtered.frames).map((f) => f.id),
        upTo(fs.filter((f) => wantedTypes.has(f.event ?? ""))).map((f) => f.id),
      );

      // A heartbeat comment comes while nothing happens.
      await waitFor("a heartbeat comment", async () => all.comments.includes("heartbeat"), {
        timeoutMs: 10_000,
        intervalMs: 50,
      });

      // Resume: a client that last saw the deployment_info comes back after more happened (a scale
      // to 2) and gets exactly what the client that never left got after that event.
      const lastSeen = fs[info]?.id;
      assert.ok(lastSeen);
      const scale = await current().cli(["app", "scale", "/sse-web", "2"]);
      assert.equal(scale.code, 0, scale.stderr);
      const runningTasks = (frames: SseFrame[]) =>
        new Set(
          frames
            .filter(
              (f) =>
                f.event === "status_update_event" &&
                f.data?.appId === "/sse-web" &&
                f.data?.taskStatus === "TASK_RUNNING",
            )
            .map((f) => f.data?.taskId),
        ).size;
      await all.until("the scaled task running", (f) => runningTasks(f.slice(info + 1)) >= 2);
      const resumed = await connect("", { "Last-Event-ID": lastSeen });
      const lastId = all.frames[all.frames.length - 1]?.id;
      await resumed.until(`the resumed client reaches ${lastId}`, (f) => f.some((x) => x.id === lastId));
      const expected = all.frames.slice(info + 1).map((f) => `${f.id} ${f.event}`);
      const got = resumed.frames
        .filter((f) => f.event !== "event_stream_attached")
        .map((f) => `${f.id} ${f.event}`);
      assert.deepEqual(got.slice(0, expected.length), expected);
      assert.equal(new Set(got).size, got.length, "no duplicates");
      assert.ok(runningTasks(resumed.frames) >= 2);

      // `drover events --marathon --from-start --json`: the same mapping, one JSON per line.
      const cli = spawn(
        process.execPath,
        [join(repoRoot, "services/cli/bin/drover.js"), "events", "--marathon", "--from-start", "--json"],
        {
          env: { ...process.env, ...current().env },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let cliOut = "";
      cli.stdout.setEncoding("utf8").on("data", (d: string) => {
        cliOut += d;
      });
      const exited = new Promise<number | null>((resolve) => cli.once("exit", (code) => resolve(code)));
      try {
        await waitFor(
          "drover events --marathon to print the deployment's success",
          async () => cliOut.split("\n").some((l) => l.includes('"eventType":"deployment_success"')),
          { timeoutMs: 30_000, intervalMs: 50 },
        );
      } finally {
        cli.kill("SIGINT");
      }
      assert.equal(await exited, 0);
      const cliEvents = cliOut
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as { eventType: string; appId?: string; taskStatus?: string });
      const cliTypes = cliEvents.map((e) => e.eventType);
      assert.ok(
        cliTypes.indexOf("deployment_info") < cliTypes.indexOf("deployment_success"),
        cliTypes.join(","),
      );
      assert.ok(
        cliEvents.some(
          (e) =>
            e.eventType === "status_update_event" &&
            e.appId === "/sse-web" &&
            e.taskStatus === "TASK_RUNNING",
        ),
      );

      // Bad input is refused, naming what.
      const bad = await fetch(`${base}/v2/events?event_type=status_update`);
      assert.equal(bad.status, 400);
      const badId = await fetch(`${base}/v2/events`, { headers: { "Last-Event-ID": "abc" } });
      assert.equal(badId.status, 400);
      assert.match(await badId.text(), /Last-Event-ID/);
    }),
);

test(
  "a client that stops reading is disconnected with a final comment saying why",
  { timeout: 300_000 },
  () =>
    withLogs(async () => {
      const slow = await connect("?event_type=api_post_event");
      const fast = await connect("?event_type=api_post_event");
      await slow.until("attached (slow)", () => true);
      slow.res.pause();
      // Big definitions (about 300 KB of env each), updated until the plugin cuts the slow client off.
      const env: Record<string, string> = {};
      for (let i = 0; i < 10; i++) env[`BIG_${i}`] = "x".repeat(30_000);
      const def = { id: "/sse-big", cmd: "sleep 600", cpus: 0.1, mem: 32, instances: 0, env };
      const add = await current().cli(["app", "add", await appFile("big-0", def)]);
      assert.equal(add.code, 0, add.stderr);
      let updates = 0;
      await waitFor(
        "the slow consumer disconnected",
        async () => {
          if (slowWarnings.length > 0) return true;
          updates++;
          const file = await appFile(`big-${updates}`, { ...def, env: { ...env, N: String(updates) } });
          const r = await current().cli(["app", "update", "/sse-big", file, "--detach"]);
          assert.equal(r.code, 0, r.stderr);
          return slowWarnings.length > 0;
        },
        { timeoutMs: 180_000, intervalMs: 10 },
      );
      // The fast client was not affected: it has every update.
      await fast.until(
        "the fast client has every update",
        (f) => f.filter((x) => x.event === "api_post_event").length >= updates + 1,
      );
      assert.equal(fast.ended, false);
      // The slow client, reading again, gets what was sent, then the final comment, then the end.
      slow.res.resume();
      await waitFor("the slow client's stream to end", async () => slow.ended, {
        timeoutMs: 60_000,
        intervalMs: 50,
      });
      const last = slow.comments[slow.comments.length - 1] ?? "";
      assert.match(
        last,
        /^disconnected: slow consumer: \d+ bytes .* above the bound of 1048576; reconnect with Last-Event-ID/,
      );
      assert.ok(
        slow.frames.length >= 1 && slow.frames.length < fast.frames.length,
        `${slow.frames.length} < ${fast.frames.length}`,
      );
    }),
);

test(
  "a follower scheduler serves /v2/events itself; commit-to-client delay of status_update_event",
  { timeout: 300_000 },
  (t) =>
    withLogs(async () => {
      // The follower: the replica whose /v2/info says it is not elected.
      const infos = await Promise.all(
        current().schedulers.map(async (p) => {
          const url = httpUrlOf(p);
          assert.ok(url, "a scheduler with an HTTP address");
          const info = (await (await fetch(`${url}/v2/info`)).json()) as { elected?: boolean };
          return { url, elected: info.elected === true };
        }),
      );
      const follower = infos.find((i) => !i.elected);
      assert.ok(follower && infos.some((i) => i.elected), JSON.stringify(infos));
      const received: { taskId: unknown; delayMs: number }[] = [];
      const sse = await SseClient.connect(`${follower.url}/v2/events?event_type=status_update_event`);
      clients.push(sse);
      assert.equal(sse.res.statusCode, 200);
      assert.equal(sse.res.headers["x-accel-buffering"], "no");
      sse.res.on("data", () => {
        for (const f of sse.frames.slice(received.length))
          received.push({
            taskId: f.data?.taskId,
            delayMs: Date.now() - Date.parse(String(f.data?.timestamp)),
          });
      });
      const def = { id: "/sse-far", cmd: "sleep 600", cpus: 0.05, mem: 16, instances: 4 };
      const add = await current().cli(["app", "add", await appFile("far", def)]);
      assert.equal(add.code, 0, add.stderr);
      await sse.until(
        "4 tasks of /sse-far running, seen through the follower",
        (fs) =>
          new Set(
            fs
              .filter((f) => f.data?.appId === "/sse-far" && f.data?.taskStatus === "TASK_RUNNING")
              .map((f) => f.data?.taskId),
          ).size >= 4,
      );
      const delays = received.map((r) => r.delayMs).sort((a, b) => a - b);
      const p50 = delays[Math.floor(delays.length / 2)] ?? Number.NaN;
      const max = delays[delays.length - 1] ?? Number.NaN;
      t.diagnostic(
        `status_update_event commit-to-client delay through a follower: n=${delays.length} p50=${p50} ms max=${max} ms`,
      );
      // A figure, not an assertion (speed is measured, never asserted): 13-112 ms here on a busy 2-core machine.
      assert.ok(delays.length >= 4, `a delay for each running task: ${delays.join(",")}`);
    }),
);
