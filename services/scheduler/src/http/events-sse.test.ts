import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PlacedMarathonEvent } from "@drover/core";
import fc from "fast-check";
import {
  acceptsEventStream,
  type Cursor,
  compareCursor,
  EventsQuerySchema,
  eventIdOf,
  FrameRing,
  frameOf,
  LastEventIdSchema,
  START,
  slowConsumerVerdict,
  sseComment,
  sseFrame,
  wanted,
} from "./events-sse.js";

const placed = (seq: number, ord: number, lastOfMessage: boolean, eventType = "status_update_event") =>
  ({
    seq,
    ord,
    lastOfMessage,
    event: { eventType, timestamp: "2026-11-29T20:00:00.000Z", note: "a\nb" },
  }) satisfies PlacedMarathonEvent;

/** Parses SSE text as a client does: frames of id / event / data fields, comments apart. */
function parseSse(text: string): { id?: string; event?: string; data?: string; comment?: string }[] {
  return text
    .split("\n\n")
    .filter((b) => b !== "")
    .map((block) => {
      const f: { id?: string; event?: string; data?: string; comment?: string } = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) f.comment = (f.comment ? `${f.comment}\n` : "") + line.slice(2);
        else {
          const [k, ...v] = line.split(": ");
          (f as Record<string, string>)[k ?? ""] = v.join(": ");
        }
      }
      return f;
    });
}

describe("/v2/events framing", () => {
  it("frames an event as id, event and one data line of JSON (newlines escaped)", () => {
    const text = sseFrame(placed(7, 3, false).event, "7.3");
    assert.equal(text.split("\n").length, 5);
    const [f] = parseSse(text);
    assert.equal(f?.id, "7.3");
    assert.equal(f?.event, "status_update_event");
    assert.deepEqual(JSON.parse(f?.data ?? ""), placed(7, 3, false).event);
    assert.equal(sseFrame(placed(7, 3, false).event).startsWith("event: "), true);
  });

  it("comments are lines starting with ':' (every line of a multi-line text)", () => {
    assert.equal(sseComment("heartbeat"), ": heartbeat\n\n");
    assert.equal(sseComment("a\nb"), ": a\n: b\n\n");
  });

  it("ids: the last event of a message is the bare sequence, an earlier one <seq>.<ord>; both read back as cursors", () => {
    assert.equal(eventIdOf(placed(12, 2, false)), "12.2");
    assert.equal(eventIdOf(placed(12, 3, true)), "12");
    assert.deepEqual(LastEventIdSchema.parse("12.2"), { seq: 12, ord: 2 });
    assert.deepEqual(LastEventIdSchema.parse(" 12 "), { seq: 12, ord: Number.POSITIVE_INFINITY });
    for (const bad of ["", "x", "-1", "1.2.3", "1e5", "12.", `${"9".repeat(16)}`])
      assert.equal(LastEventIdSchema.safeParse(bad).success, false, bad);
    assert.ok(compareCursor({ seq: 12, ord: 2 }, { seq: 12, ord: Number.POSITIVE_INFINITY }) < 0);
    assert.ok(compareCursor({ seq: 12, ord: Number.POSITIVE_INFINITY }, { seq: 13, ord: 0 }) < 0);
  });

  it("event_type: one or repeated, known names only; absent means every type", () => {
    assert.equal(EventsQuerySchema.parse({}).eventTypes, undefined);
    assert.deepEqual(
      [...(EventsQuerySchema.parse({ event_type: "deployment_info" }).eventTypes ?? [])],
      ["deployment_info"],
    );
    const two = EventsQuerySchema.parse({
      event_type: ["deployment_info", "status_update_event"],
      other: "x",
    });
    assert.ok(wanted(two.eventTypes, "status_update_event"));
    assert.equal(wanted(two.eventTypes, "api_post_event"), false);
    assert.ok(wanted(undefined, "api_post_event"));
    assert.equal(EventsQuerySchema.safeParse({ event_type: "status_update" }).success, false);
    assert.equal(EventsQuerySchema.safeParse({ event_type: [1] }).success, false);
  });

  it("Accept: an event stream, any text, anything, or nothing", () => {
    for (const ok of [undefined, "", "text/event-stream", "*/*", "application/json, text/*;q=0.5"])
      assert.ok(acceptsEventStream(ok), String(ok));
    assert.equal(acceptsEventStream("application/json"), false);
  });

  it("a slow consumer is cut beyond the bound, or when it fell out of the ring, saying why and how to resume", () => {
    assert.equal(slowConsumerVerdict(1024, 1024), undefined);
    const why = slowConsumerVerdict(1025, 1024);
    assert.match(why ?? "", /slow consumer: 1025 bytes .* bound of 1024; reconnect with Last-Event-ID/);
    assert.match(slowConsumerVerdict(0, 1024, true) ?? "", /slow consumer: this client fell behind/);
  });
});

describe("FrameRing (resuming from Last-Event-ID)", () => {
  /** Messages 1..n, message s yielding (s % 3) events with ords 0, 32, 64. */
  const messages = (n: number) =>
    Array.from({ length: n }, (_, i) => {
      const seq = i + 1;
      const k = seq % 3;
      return Array.from({ length: k }, (_, j) => placed(seq, j * 32, j === k - 1));
    });

  it("property: a client cut off at any id and resumed with it gets every later frame once, in order", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.nat(), (n, pick) => {
        const ring = new FrameRing(1000, 1 << 20, 1);
        const all = messages(n).flat().map(frameOf);
        for (const f of all) ring.push(f);
        const cut = pick % (all.length + 1);
        const lastSeen = cut === 0 ? START : all[cut - 1]?.cursor;
        assert.ok(lastSeen);
        // The id the client saw, read back as a Last-Event-ID.
        const id = cut === 0 ? undefined : parseSse(all[cut - 1]?.text ?? "")[0]?.id;
        const cursor: Cursor = id === undefined ? START : LastEventIdSchema.parse(id);
        const { frames, gap } = ring.since(cursor);
        assert.equal(gap, false);
        assert.deepEqual(
          frames.map((f) => f.text),
          all.slice(cut).map((f) => f.text),
        );
      }),
      { numRuns: 300 },
    );
  });

  it("a resume point older than the kept frames is a gap; the oldest kept are sent", () => {
    const ring = new FrameRing(3, 1 << 20, 1);
    const all = messages(10).flat().map(frameOf);
    for (const f of all) ring.push(f);
    assert.equal(ring.size, 3);
    const r = ring.since(START);
    assert.equal(r.gap, true);
    assert.deepEqual(r.frames, all.slice(-3));
    const fresh = ring.since(all[all.length - 4]?.cursor ?? START);
    assert.equal(fresh.gap, false);
    assert.equal(fresh.frames.length, 3);
  });

  it("a reader that started after the stream's first message: earlier resume points are a gap", () => {
    const ring = new FrameRing(100, 1 << 20, 50);
    ring.push(frameOf(placed(50, 0, true)));
    assert.equal(ring.since({ seq: 10, ord: Number.POSITIVE_INFINITY }).gap, true);
    assert.equal(ring.since({ seq: 49, ord: Number.POSITIVE_INFINITY }).gap, false);
  });

  it("keeps at most maxBytes of text (at least one frame)", () => {
    const ring = new FrameRing(1000, 500, 1);
    for (const f of messages(30).flat().map(frameOf)) ring.push(f);
    const kept = ring.since(START).frames;
    assert.ok(kept.reduce((n, f) => n + f.text.length, 0) <= 500);
    assert.ok(kept.length >= 1);
  });
});
