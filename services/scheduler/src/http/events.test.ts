/**
 * The /v2/events plugin over a fake committed log (no NATS): real fastify, real sockets, node:http
 * clients. Attach first, filters, ids and Last-Event-ID, heartbeat, bad input, the slow consumer.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { EventMessage, PublishedEvent } from "@drover/bus";
import { createLogger } from "@drover/common";
import { parseAppSpecJson } from "@drover/core";
import Fastify, { type FastifyInstance } from "fastify";
import { type EventLogSource, eventsRoutes } from "./events.js";

/** An in-memory log: `publish` appends a message and hands it to the follower. */
class FakeLog implements EventLogSource {
  readonly messages: EventMessage[] = [];
  private handler: ((m: EventMessage) => void) | undefined;
  async bounds() {
    return { firstSeq: 1, lastSeq: this.messages.length };
  }
  async follow(startSeq: number, handler: (m: EventMessage) => void) {
    for (const m of this.messages.slice(startSeq - 1)) handler(m);
    this.handler = handler;
    return async () => {
      this.handler = undefined;
    };
  }
  publish(events: PublishedEvent[]): number {
    const m = { seq: this.messages.length + 1, subject: "drover.events.x", events };
    this.messages.push(m);
    this.handler?.(m);
    return m.seq;
  }
}

let n = 0;
function appCreated(id: string, envBytes = 0): PublishedEvent {
  const r = parseAppSpecJson(
    JSON.stringify({
      id,
      cmd: "sleep 1",
      cpus: 0.1,
      mem: 16,
      env: Object.fromEntries(
        Array.from({ length: Math.ceil(envBytes / 30_000) }, (_, i) => [`BIG_${i}`, "x".repeat(30_000)]),
      ),
    }),
  );
  assert.ok(r.ok);
  n++;
  return {
    aggregate: "app",
    id: id.slice(1),
    version: 1,
    atMs: 1_800_000_000_000 + n,
    revision: String(n),
    event: { type: "AppCreated", spec: r.value },
  };
}
const appDeleted = (id: string): PublishedEvent => ({
  aggregate: "app",
  id: id.slice(1),
  version: 2,
  atMs: 1_800_000_000_000 + ++n,
  revision: String(n),
  event: { type: "AppDeleted" },
});

interface Frame {
  id?: string;
  event?: string;
  data?: Record<string, unknown>;
  comment?: string;
}

class Client {
  readonly frames: Frame[] = [];
  readonly comments: string[] = [];
  ended = false;
  private buf = "";
  constructor(
    readonly res: http.IncomingMessage,
    readonly req: http.ClientRequest,
  ) {
    res.setEncoding("utf8");
    res.on("data", (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf("\n\n"); i !== -1; i = this.buf.indexOf("\n\n")) {
        const f: Frame = {};
        for (const line of this.buf.slice(0, i).split("\n")) {
          if (line.startsWith(": ")) f.comment = line.slice(2);
          else if (line.startsWith("id: ")) f.id = line.slice(4);
          else if (line.startsWith("event: ")) f.event = line.slice(7);
          else if (line.startsWith("data: ")) f.data = JSON.parse(line.slice(6)) as Record<string, unknown>;
        }
        this.buf = this.buf.slice(i + 2);
        if (f.comment !== undefined) this.comments.push(f.comment);
        else this.frames.push(f);
      }
    });
    res.on("close", () => {
      this.ended = true;
    });
  }
}

/** Polls `cond` every 10 ms until it holds, failing after `ms`. */
async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const quiet = createLogger("events-test", "error");
const warnings: string[] = [];

describe("GET /v2/events (plugin over a fake log)", () => {
  const log = new FakeLog();
  let app: FastifyInstance;
  let base = "";
  const clients: Client[] = [];
  const connect = (query = "", headers: Record<string, string> = {}) =>
    new Promise<Client>((resolve, reject) => {
      const req = http.get(`${base}/v2/events${query}`, { headers }, (res) => {
        const c = new Client(res, req);
        clients.push(c);
        resolve(c);
      });
      req.on("error", reject);
    });

  before(async () => {
    log.publish([appCreated("/before")]); // in the log before the server starts
    app = Fastify();
    await app.register(
      eventsRoutes({
        source: log,
        log: { ...quiet, warn: (m: string) => void warnings.push(m), child: () => quiet },
        heartbeatMs: 100,
        maxBufferedBytes: 64 * 1024,
        closeGraceMs: 5_000,
      }),
    );
    await app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const c of clients) c.req.destroy();
    await app.close();
  });

  it("attaches first, then sends what is published from now on, with ids and heartbeats", async () => {
    const c = await connect();
    assert.equal(c.res.headers["content-type"], "text/event-stream; charset=utf-8");
    assert.equal(c.res.headers["x-accel-buffering"], "no");
    await until("attached", () => c.frames.length === 1);
    assert.equal(c.frames[0]?.event, "event_stream_attached");
    assert.equal(c.frames[0]?.data?.remoteAddress, "127.0.0.1");
    const seq = log.publish([appCreated("/a")]);
    const del = log.publish([appDeleted("/a")]);
    await until("3 events", () => c.frames.length === 4);
    assert.deepEqual(
      c.frames.slice(1).map((f) => [f.id, f.event]),
      [
        [String(seq), "api_post_event"],
        [`${del}.0`, "api_post_event"],
        [String(del), "app_terminated_event"],
      ],
    );
    assert.equal(c.frames[1]?.data?.uri, "/v2/apps/a");
    await until("a heartbeat", () => c.comments.includes("heartbeat"));
  });

  it("event_type filters (repeatable); unknown types and bad Last-Event-ID are 400; a JSON-only Accept is 406", async () => {
    const c = await connect("?event_type=app_terminated_event&event_type=event_stream_attached");
    await until("attached", () => c.frames.length === 1);
    log.publish([appCreated("/b")]);
    const del = log.publish([appDeleted("/b")]);
    await until("the termination", () => c.frames.length === 2);
    assert.deepEqual(c.frames[1]?.id, String(del));
    assert.equal(c.frames[1]?.event, "app_terminated_event");
    const quiet = await connect("?event_type=status_update_event");
    await until("a heartbeat", () => quiet.comments.length > 0);
    assert.equal(quiet.frames.length, 0, "not even event_stream_attached, which it did not ask for");
    assert.equal((await fetch(`${base}/v2/events?event_type=nope`)).status, 400);
    assert.equal((await fetch(`${base}/v2/events`, { headers: { "Last-Event-ID": "1;2" } })).status, 400);
    assert.equal((await fetch(`${base}/v2/events`, { headers: { Accept: "application/json" } })).status, 406);
  });

  it("Last-Event-ID resumes after that event, even in the middle of a message", async () => {
    const first = await connect();
    await until("attached", () => first.frames.length === 1);
    log.publish([appCreated("/c")]);
    log.publish([appDeleted("/c")]);
    log.publish([appCreated("/d")]);
    await until("3 messages", () => first.frames.length === 5);
    const seen = first.frames.slice(1);
    for (let cut = 0; cut < seen.length; cut++) {
      const id = seen[cut]?.id;
      assert.ok(id);
      const c = await connect("", { "Last-Event-ID": id });
      await until(`resumed after ${id}`, () => c.frames.length === 1 + seen.length - cut - 1);
      assert.deepEqual(
        c.frames.slice(1).map((f) => f.id),
        seen.slice(cut + 1).map((f) => f.id),
      );
      c.req.destroy();
    }
    // From before everything kept: the whole ring, the message published before the server too.
    const all = await connect("", { "Last-Event-ID": "0" });
    await until("everything", () => all.frames.some((f) => f.data?.uri === "/v2/apps/d"));
    assert.equal(all.frames[1]?.data?.uri, "/v2/apps/before");
  });

  it("a client that stops reading is cut, its last line saying why; a reading client is not", async () => {
    const slow = await connect();
    const fast = await connect("?event_type=api_post_event");
    await until("attached", () => slow.frames.length === 1);
    slow.res.pause();
    let published = 0;
    // 200 KB events until the plugin says it cut the slow one (its socket and the kernel's buffers fill first).
    while (warnings.length === 0) {
      assert.ok(published < 400, "the slow client was never cut");
      log.publish([appCreated(`/big${published}`, 200_000)]);
      published++;
      await new Promise((r) => setTimeout(r, 1));
    }
    await until("the fast client has every big event", () => fast.frames.length === published, 30_000);
    assert.equal(fast.ended, false);
    slow.res.resume();
    await until("the slow client's end", () => slow.ended, 30_000);
    assert.match(
      slow.comments.at(-1) ?? "",
      /^disconnected: slow consumer: \d+ bytes .* bound of 65536; reconnect with Last-Event-ID/,
    );
    const slowGot = slow.frames.filter((f) => f.event === "api_post_event").length;
    assert.ok(slowGot < published, `the slow client got ${slowGot} of ${published}`);
  });
});
