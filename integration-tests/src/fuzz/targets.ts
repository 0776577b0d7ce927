/**
 * One function per boundary: it sends one input and classifies what came back.
 *
 * What counts as a violation (anything else is a refusal or a success, both fine):
 * - gRPC status INTERNAL or UNKNOWN, or any code outside the allowed refusals (INVALID_ARGUMENT,
 *   NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, PERMISSION_DENIED, RESOURCE_EXHAUSTED, OUT_OF_RANGE,
 *   ABORTED for a concurrent change, UNAVAILABLE only with a `drover-leader` hint or when a session
 *   that was accepted ends);
 * - no answer within the bound (DEADLINE_EXCEEDED, a stream that neither answers nor ends);
 * - an answer that echoes more than 1 KiB of the input, or larger than 16 KiB;
 * - a `drover-issues` trailer that is not a JSON array of { path, message };
 * - an accepted app whose stored definition fails the app schema, or that the schema refuses;
 * - a framework call that acts for a framework without carrying that framework's stream id (only when
 *   the proto has Subscribed.stream_id);
 * - config loading that throws anything but the project's typed error, or an error naming no field;
 * - a CLI refusal that is not one line "drover: error: …" naming the field (or invalid JSON), or that
 *   shows a stack trace or raw control characters.
 * A process exiting is detected by the runner.
 */
import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { clip, DroverError, InvalidArgumentError, printable } from "@drover/common";
import {
  AgentConfigSchema,
  CliConfigSchema,
  loadAgentConfig,
  loadCliConfig,
  loadMasterConfig,
  loadSchedulerConfig,
  MasterConfigSchema,
  SchedulerConfigSchema,
} from "@drover/config";
import { AppSpecSchema, formatIssues, parseAppSpecJson } from "@drover/core";
import { AgentCommand, AgentMessage, type App, FrameworkEvent, Subscribed } from "@drover/proto";
import { type Client, Metadata, status } from "@grpc/grpc-js";
import type { JetStreamClient } from "nats";
import { runCli } from "../harness/index.js";
import {
  type AgentFrame,
  type CliInput,
  type ConfigInput,
  FRAMEWORK_CALLS,
  type FuzzInput,
  isJsonDoc,
  isRef,
  jsonDocText,
  jsonText,
  type MasterCallInput,
  type NatsInput,
  type Ref,
  type TargetName,
} from "./arbitraries.js";
import { type FakeAgent, type FuzzFramework, type LivePools, STREAM_ID_METADATA_KEY } from "./peers.js";
import {
  type Answer,
  MASTER_METHODS,
  type MethodSpec,
  methodByPath,
  rawBidiStream,
  rawServerStream,
  rawUnary,
  SCHEDULER_METHODS,
  StreamWatch,
  statusName,
} from "./wire.js";

export interface Violation {
  kind: string;
  detail: string;
}

export type ProcessKind = "master" | "scheduler";

export interface Outcome {
  target: TargetName;
  method: string;
  /** "OK", a gRPC status name, or a target's own word (CREATED, REGISTERED, STORED, LOADED, EXIT_1 …). */
  status: string;
  /** The input was refused (an allowed error). */
  refused: boolean;
  latencyMs: number;
  violations: Violation[];
  /** The process that served the input (a crash during it makes it a suspect). */
  process?: ProcessKind;
  /** The failure looks like a lost connection (collateral if the process went down meanwhile). */
  transport?: boolean;
  /** References and the values they resolved to. */
  refs?: Record<string, string>;
  /** Outcomes of calls made on behalf of this input (a subscription's follow-up calls). */
  extra?: Outcome[];
}

export interface TargetEnv {
  master: Client;
  scheduler: Client;
  boundMs: number;
  agent: FakeAgent;
  framework: FuzzFramework;
  pools: LivePools;
  js: JetStreamClient;
  /** Where config and CLI input files are written. */
  workDir: string;
  /** Environment of the CLI (the cluster's addresses). */
  cliEnv: Record<string, string>;
  /** The proto carries Subscribed.stream_id: framework calls must prove their caller. */
  streamIds: boolean;
}

/** Does this proto version hand out stream ids (Subscribed.stream_id)? */
export function protoHasStreamIds(): boolean {
  return "streamId" in Subscribed.fromPartial({});
}

// ------------------------------------------------------------------ references

interface Subscription {
  frameworkId: string;
  streamId: string;
}

class Resolver {
  readonly used: Record<string, string> = {};
  /** The last anchor app id resolved (what `requestAppId` means). */
  private anchor: string | undefined;

  constructor(
    private readonly env: TargetEnv,
    private readonly sub?: Subscription,
  ) {}

  ref(r: Ref): string {
    const p = this.env.pools;
    const pick = (pool: readonly string[], fallback: string) =>
      pool.length > 0 ? (pool[r.i % pool.length] ?? fallback) : fallback;
    let v: string;
    switch (r.$ref) {
      case "ownFrameworkId":
        v = this.env.framework.frameworkId || "fw-fuzz-not-subscribed";
        break;
      case "schedulerFrameworkId":
        v = p.schedulerFrameworkId || "fw-scheduler-unknown";
        break;
      case "otherFrameworkId":
        v = pick(p.otherFrameworkIds, "fw-other-unknown");
        break;
      case "subFrameworkId":
        v = this.sub?.frameworkId ?? "fw-sub-unknown";
        break;
      case "liveOfferId":
        v = pick([...this.env.framework.offers.keys()], "offer-none-live");
        break;
      case "ownTaskId":
        v = pick(p.ownTaskIds, "fz-task-none");
        break;
      case "schedulerTaskId":
        v = pick(p.schedulerTaskIds, "task-of-scheduler-none");
        break;
      case "anyTaskId":
        v = pick(p.allTaskIds, "task-none");
        break;
      case "fakeAgentId":
        v = this.env.agent.agentId;
        break;
      case "otherAgentId":
        v = pick(p.otherAgentIds, "agent-none");
        break;
      case "anchorAppId":
        v = pick(p.anchors, "fzanchor-0");
        this.anchor = v;
        break;
      case "requestAppId":
        v = this.anchor ?? pick(p.anchors, "fzanchor-0");
        break;
    }
    this.used[`${r.$ref}#${r.i}`] = v;
    return v;
  }

  /** A deep copy with references resolved and JSON documents written out. */
  deep(value: unknown): unknown {
    if (isRef(value)) return this.ref(value);
    if (isJsonDoc(value)) return jsonDocText(value, (r) => this.ref(r));
    if (Array.isArray(value)) return value.map((v) => this.deep(v));
    if (value instanceof Uint8Array) return value;
    if (typeof value === "object" && value !== null)
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.deep(v)]));
    return value;
  }
}

// ------------------------------------------------------------------ judging answers

const ALLOWED_REFUSALS = new Set<number>([
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.FAILED_PRECONDITION,
  status.PERMISSION_DENIED,
  status.RESOURCE_EXHAUSTED,
  status.OUT_OF_RANGE,
  status.ABORTED,
]);

const ECHO_LIMIT = 1024;
const ANSWER_LIMIT = 16 * 1024;
const TRANSPORT_TEXT =
  /Connection dropped|RST_STREAM|ECONNRESET|ECONNREFUSED|No connection established|Stream refused|Call cancelled|socket hang up|GOAWAY/i;

/** The outcome failed on a lost connection (its own call, or a clean-up call it made). */
export function looksLikeTransport(o: Outcome): boolean {
  return o.transport === true || o.violations.some((v) => TRANSPORT_TEXT.test(v.detail));
}

/** Every string of at least 1 KiB in `value` (keys too), for the echo check. */
export function longStrings(value: unknown, out: string[] = [], depth = 0): string[] {
  if (depth > 40 || out.length > 64) return out;
  if (typeof value === "string") {
    if (value.length >= ECHO_LIMIT) out.push(value);
  } else if (value instanceof Uint8Array) {
    if (value.length >= ECHO_LIMIT) out.push(Buffer.from(value).toString("utf8"));
  } else if (Array.isArray(value)) {
    for (const v of value.slice(0, 64)) longStrings(v, out, depth + 1);
  } else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (k.length >= ECHO_LIMIT) out.push(k);
      longStrings(v, out, depth + 1);
    }
  }
  return out;
}

/** Does `text` contain 1 KiB taken from one of `inputs` (start, middle or end)? */
export function echoes(text: string, inputs: readonly string[]): string | undefined {
  if (text.length < ECHO_LIMIT) return undefined;
  for (const s of inputs) {
    const mid = Math.floor((s.length - ECHO_LIMIT) / 2);
    for (const w of [s.slice(0, ECHO_LIMIT), s.slice(mid, mid + ECHO_LIMIT), s.slice(-ECHO_LIMIT)]) {
      if (w.length === ECHO_LIMIT && text.includes(w)) return w;
    }
  }
  return undefined;
}

const clipText = (s: string, n = 200): string => (s.length <= n ? s : `${s.slice(0, n)}…(${s.length} chars)`);

interface Judged {
  status: string;
  refused: boolean;
  violations: Violation[];
  transport: boolean;
}

/** The checks every gRPC answer gets. `sessionAccepted`: an UNAVAILABLE end of an accepted session is fine. */
export function judgeAnswer(
  a: Answer,
  inputStrings: readonly string[],
  boundMs: number,
  opts: { sessionAccepted?: boolean } = {},
): Judged {
  const violations: Violation[] = [];
  const name = a.code === -1 ? "CLIENT_ERROR" : statusName(a.code);
  const leader = (a.metadata["drover-leader"] ?? []).some((v) => v.length > 0);
  let refused = false;
  let transport = false;
  if (a.code === status.OK) {
    // fine
  } else if (a.code === -1) {
    violations.push({ kind: "fuzzer", detail: a.details });
  } else if (ALLOWED_REFUSALS.has(a.code)) {
    refused = true;
  } else if (a.code === status.UNAVAILABLE && (leader || opts.sessionAccepted)) {
    refused = true;
  } else if (a.code === status.DEADLINE_EXCEEDED) {
    violations.push({ kind: "slow", detail: `no answer within ${boundMs} ms` });
  } else {
    transport =
      a.code === status.UNAVAILABLE || a.code === status.CANCELLED || TRANSPORT_TEXT.test(a.details);
    const kind =
      a.code === status.INTERNAL
        ? "INTERNAL"
        : a.code === status.UNKNOWN
          ? "UNKNOWN"
          : a.code === status.UNAVAILABLE
            ? "UNAVAILABLE-without-leader-hint"
            : `unexpected-${name}`;
    violations.push({ kind, detail: clipText(a.details) });
  }
  if (a.code !== status.OK && a.code !== -1) {
    const issuesRaw = a.metadata["drover-issues"];
    let issuesText = "";
    if (issuesRaw !== undefined) {
      for (const raw of issuesRaw) {
        try {
          const parsed: unknown = JSON.parse(raw);
          const ok =
            Array.isArray(parsed) &&
            parsed.every(
              (i) =>
                typeof i === "object" &&
                i !== null &&
                typeof (i as { path?: unknown }).path === "string" &&
                typeof (i as { message?: unknown }).message === "string",
            );
          if (!ok)
            violations.push({
              kind: "bad-issues-trailer",
              detail: `not [{path, message}]: ${clipText(raw)}`,
            });
          else
            issuesText += (parsed as { path: string; message: string }[])
              .map((i) => `${i.path} ${i.message}`)
              .join("\n");
        } catch {
          violations.push({ kind: "bad-issues-trailer", detail: `not JSON: ${clipText(raw)}` });
        }
      }
    }
    const trailers = Object.values(a.metadata).flat().join("\n");
    const size = a.details.length + trailers.length;
    if (size > ANSWER_LIMIT)
      violations.push({ kind: "answer-too-large", detail: `details and trailers are ${size} chars` });
    const echoed = echoes(`${a.details}\n${trailers}\n${issuesText}`, inputStrings);
    if (echoed !== undefined)
      violations.push({
        kind: "echo",
        detail: `the answer repeats 1 KiB of the input: ${clipText(JSON.stringify(echoed), 80)}`,
      });
  }
  if (a.latencyMs > boundMs && !violations.some((v) => v.kind === "slow"))
    violations.push({
      kind: "slow",
      detail: `answered after ${Math.round(a.latencyMs)} ms (bound ${boundMs} ms)`,
    });
  return { status: name, refused, violations, transport };
}

// ------------------------------------------------------------------ apps: checks and clean-up

/** Why a stored app definition is not valid, or undefined if it is. */
export function appDefinitionProblem(app: App): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(app.definitionJson);
  } catch (err) {
    return `definition_json is not JSON: ${err instanceof Error ? err.message : String(err)}`;
  }
  const r = AppSpecSchema.safeParse(parsed);
  if (!r.success) return `fails the app schema: ${clipText(r.error.message, 300)}`;
  if (r.data.id !== app.id)
    return `definition id ${JSON.stringify(r.data.id)} is not the app id ${JSON.stringify(app.id)}`;
  return undefined;
}

async function housekeeping(
  env: TargetEnv,
  method: "DeleteApp" | "ScaleApp",
  req: Record<string, unknown>,
  violations: Violation[],
): Promise<void> {
  const m = SCHEDULER_METHODS[method] as MethodSpec;
  const a = await rawUnary(env.scheduler, m.path, m.encode(req), new Metadata(), env.boundMs);
  if (a.code !== status.OK && a.code !== status.NOT_FOUND)
    violations.push({
      kind: "cleanup-failed",
      detail: `${method} ${JSON.stringify(req)} → ${statusName(a.code)}: ${clipText(a.details)}`,
    });
}

/** After a scheduler call answered OK: the app it returns must be valid; created apps are removed again. */
async function afterSchedulerOk(
  env: TargetEnv,
  spec: MethodSpec,
  response: Buffer | undefined,
  violations: Violation[],
): Promise<string> {
  let decoded: unknown;
  try {
    decoded = spec.decodeResponse(response ?? Buffer.alloc(0));
  } catch (err) {
    violations.push({
      kind: "undecodable-response",
      detail: err instanceof Error ? err.message : String(err),
    });
    return "OK";
  }
  if (!["CreateApp", "UpdateApp", "ScaleApp", "GetApp"].includes(spec.name)) return "OK";
  const app = (decoded as { app?: App }).app;
  if (!app) {
    if (spec.name !== "GetApp") return "OK";
    violations.push({ kind: "protocol", detail: "GetApp answered OK without an app" });
    return "OK";
  }
  const problem = appDefinitionProblem(app);
  if (problem)
    violations.push({ kind: "invalid-app-stored", detail: `app ${JSON.stringify(app.id)}: ${problem}` });
  if (spec.name === "CreateApp") {
    await housekeeping(env, "DeleteApp", { id: app.id }, violations);
    return "CREATED";
  }
  if (spec.name !== "GetApp" && app.instances > 0)
    await housekeeping(env, "ScaleApp", { id: app.id, instances: 0 }, violations);
  return spec.name === "GetApp" ? "OK" : "CHANGED";
}

// ------------------------------------------------------------------ gRPC targets

function encodeOrFail(spec: MethodSpec, req: unknown): Buffer | string {
  try {
    return spec.encode(req);
  } catch (err) {
    return `the encoder refused the request: ${err instanceof Error ? err.message : String(err)}`;
  }
}

function fuzzerFailure(target: TargetName, method: string, detail: string, process?: ProcessKind): Outcome {
  return {
    target,
    method,
    status: "FUZZER_ERROR",
    refused: false,
    latencyMs: 0,
    violations: [{ kind: "fuzzer", detail }],
    ...(process ? { process } : {}),
  };
}

async function schedulerTarget(
  input: Extract<FuzzInput, { target: "scheduler" }>,
  env: TargetEnv,
): Promise<Outcome> {
  const r = new Resolver(env);
  const req = r.deep(input.req) as Record<string, unknown>;
  const spec = SCHEDULER_METHODS[input.method] as MethodSpec;
  const body = encodeOrFail(spec, req);
  if (typeof body === "string") return fuzzerFailure("scheduler", input.method, body, "scheduler");
  const a = await rawUnary(env.scheduler, spec.path, body, new Metadata(), env.boundMs);
  const j = judgeAnswer(a, longStrings(req), env.boundMs);
  let statusWord = j.status;
  if (a.code === status.OK) {
    statusWord = await afterSchedulerOk(env, spec, a.response, j.violations);
    if (input.method === "CreateApp" || input.method === "UpdateApp") {
      const local = parseAppSpecJson(String(req.appJson ?? ""));
      if (!local.ok)
        j.violations.push({
          kind: "accepted-invalid-definition",
          detail: `the app schema refuses what ${input.method} accepted: ${clipText(formatIssues(local.issues))}`,
        });
    }
  }
  return {
    target: "scheduler",
    method: input.method,
    status: statusWord,
    refused: j.refused,
    latencyMs: a.latencyMs,
    violations: j.violations,
    process: "scheduler",
    transport: j.transport,
    refs: r.used,
  };
}

function streamIdMetadata(choice: MasterCallInput["streamId"], env: TargetEnv, sub?: Subscription): Metadata {
  const md = new Metadata();
  const id =
    choice.kind === "own"
      ? env.framework.streamId
      : choice.kind === "sub"
        ? (sub?.streamId ?? "")
        : choice.kind === "value"
          ? choice.value
          : "";
  if (id) md.set(STREAM_ID_METADATA_KEY, id);
  return md;
}

async function masterCall(
  input: MasterCallInput,
  env: TargetEnv,
  target: TargetName,
  sub?: Subscription,
): Promise<Outcome> {
  const r = new Resolver(env, sub);
  const req = r.deep(input.req) as Record<string, unknown>;
  const spec = MASTER_METHODS[input.method] as MethodSpec;
  const body = encodeOrFail(spec, req);
  if (typeof body === "string") return fuzzerFailure(target, input.method, body, "master");
  let md: Metadata;
  // the pair this call can prove (taken now: the fuzz framework may resubscribe meanwhile)
  const owner =
    input.streamId.kind === "own"
      ? { frameworkId: env.framework.frameworkId, streamId: env.framework.streamId }
      : input.streamId.kind === "sub"
        ? sub
        : undefined;
  try {
    md = streamIdMetadata(input.streamId, env, sub);
  } catch (err) {
    return fuzzerFailure(
      target,
      input.method,
      `metadata: ${err instanceof Error ? err.message : String(err)}`,
      "master",
    );
  }
  const a = await rawUnary(env.master, spec.path, body, md, env.boundMs);
  const j = judgeAnswer(a, longStrings(req), env.boundMs);
  if (a.code === status.OK) {
    try {
      spec.decodeResponse(a.response ?? Buffer.alloc(0));
    } catch (err) {
      j.violations.push({
        kind: "undecodable-response",
        detail: err instanceof Error ? err.message : String(err),
      });
    }
    if (env.streamIds && FRAMEWORK_CALLS.includes(input.method)) {
      const fw = String(req.frameworkId ?? "");
      const proven = owner !== undefined && owner.streamId !== "" && fw === owner.frameworkId;
      if (!proven)
        j.violations.push({
          kind: "caller-not-verified",
          detail: `${input.method} for framework ${clipText(JSON.stringify(fw), 60)} answered OK with stream id "${input.streamId.kind}"`,
        });
    }
  }
  return {
    target,
    method: input.method,
    status: j.status,
    refused: j.refused,
    latencyMs: a.latencyMs,
    violations: j.violations,
    process: "master",
    transport: j.transport,
    refs: r.used,
  };
}

function firstEvent(messages: Buffer[]): { event?: FrameworkEvent; error?: string } {
  const first = messages[0];
  if (!first) return {};
  try {
    return { event: FrameworkEvent.decode(first) };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

async function subscribeTarget(
  input: Extract<FuzzInput, { target: "subscribe" }>,
  env: TargetEnv,
): Promise<Outcome> {
  const r = new Resolver(env);
  const req = r.deep(input.req) as Record<string, unknown>;
  const spec = MASTER_METHODS.Subscribe as MethodSpec;
  const body = encodeOrFail(spec, req);
  if (typeof body === "string") return fuzzerFailure("subscribe", "Subscribe", body, "master");
  const call = rawServerStream(env.master, spec.path, body, new Metadata());
  const w = new StreamWatch(call);
  const violations: Violation[] = [];
  const extra: Outcome[] = [];
  let statusWord: string;
  let refused = false;
  let transport = false;
  let latencyMs: number;
  try {
    const timedOut = await w.until(() => w.messages.length > 0, env.boundMs);
    latencyMs = w.elapsedMs;
    if (w.messages.length > 0) {
      const { event, error } = firstEvent(w.messages);
      const e = event?.event;
      if (error !== undefined) {
        violations.push({ kind: "undecodable-response", detail: error });
        statusWord = "BAD_EVENT";
      } else if (e?.$case !== "subscribed") {
        violations.push({
          kind: "protocol",
          detail: `first event is ${e?.$case ?? "empty"}, not subscribed`,
        });
        statusWord = "BAD_EVENT";
      } else {
        statusWord = "SUBSCRIBED";
        const sub = {
          frameworkId: e.value.frameworkId,
          streamId: String((e.value as { streamId?: unknown }).streamId ?? ""),
        };
        env.pools.addFramework(sub.frameworkId);
        for (const f of input.followUps) {
          if (w.answer) break;
          extra.push(await masterCall(f, env, "subscribe", sub));
        }
      }
    } else if (w.answer) {
      const j = judgeAnswer(w.answer, longStrings(req), env.boundMs);
      statusWord = j.status;
      refused = j.refused;
      transport = j.transport;
      violations.push(...j.violations);
      if (w.answer.code === status.OK)
        violations.push({ kind: "protocol", detail: "the subscription ended OK without any event" });
    } else {
      statusWord = "NO_ANSWER";
      if (timedOut)
        violations.push({ kind: "slow", detail: `no event and no status within ${env.boundMs} ms` });
    }
  } finally {
    call.cancel();
  }
  return {
    target: "subscribe",
    method: "Subscribe",
    status: statusWord,
    refused,
    latencyMs,
    violations,
    process: "master",
    transport,
    refs: r.used,
    extra,
  };
}

function encodeAgentFrame(frame: AgentFrame, r: Resolver): Buffer {
  if ("garbage" in frame) return Buffer.from(frame.garbage);
  if ("empty" in frame) return Buffer.alloc(0);
  if ("heartbeat" in frame)
    return Buffer.from(
      AgentMessage.encode(
        AgentMessage.fromPartial({
          message: { $case: "heartbeat", value: { timestampMs: frame.heartbeat } },
        }),
      ).finish(),
    );
  return (MASTER_METHODS.AgentSession as MethodSpec).encode({
    message: { $case: "register", value: r.deep(frame.register) },
  });
}

/** Counts the `registered` commands of an agent session as they arrive (decoding each message once). */
class RegisteredCounter {
  private seen = 0;
  count = 0;

  constructor(private readonly violations: Violation[]) {}

  update(messages: Buffer[]): number {
    for (; this.seen < messages.length; this.seen++) {
      const m = messages[this.seen] ?? Buffer.alloc(0);
      try {
        if (AgentCommand.decode(m).command?.$case === "registered") this.count++;
      } catch (err) {
        if (!this.violations.some((v) => v.kind === "undecodable-response"))
          this.violations.push({
            kind: "undecodable-response",
            detail: err instanceof Error ? err.message : String(err),
          });
      }
    }
    return this.count;
  }
}

async function agentTarget(input: Extract<FuzzInput, { target: "agent" }>, env: TargetEnv): Promise<Outcome> {
  const r = new Resolver(env);
  const frames: Buffer[] = [];
  try {
    for (const f of input.frames) frames.push(encodeAgentFrame(f, r));
  } catch (err) {
    return fuzzerFailure(
      "agent",
      "AgentSession",
      `the encoder refused a frame: ${err instanceof Error ? err.message : String(err)}`,
      "master",
    );
  }
  const inputStrings = longStrings(input.frames.map((f) => ("register" in f ? r.deep(f.register) : f)));
  const call = rawBidiStream(env.master, (MASTER_METHODS.AgentSession as MethodSpec).path, new Metadata());
  const w = new StreamWatch(call);
  const violations: Violation[] = [];
  const registered = new RegisteredCounter(violations);
  let accepted = false;
  let slowest = 0;
  try {
    for (const [i, frame] of input.frames.entries()) {
      if (w.answer) break;
      const bytes = frames[i] ?? Buffer.alloc(0);
      call.write(bytes);
      if (!("register" in frame)) continue;
      const before = registered.update(w.messages);
      const started = performance.now();
      const timedOut = await w.until(() => registered.update(w.messages) > before, env.boundMs);
      slowest = Math.max(slowest, performance.now() - started);
      if (timedOut) {
        violations.push({
          kind: "slow",
          detail: `RegisterAgent got neither registered nor a status within ${env.boundMs} ms`,
        });
        break;
      }
      if (registered.update(w.messages) > before) accepted = true;
    }
    if (!w.answer && !violations.some((v) => v.kind === "slow")) {
      call.end();
      const timedOut = await w.until(() => false, env.boundMs);
      if (timedOut)
        violations.push({
          kind: "slow",
          detail: `the master did not close the session within ${env.boundMs} ms after the agent ended it`,
        });
    }
  } finally {
    call.cancel();
  }
  let statusWord = accepted ? "REGISTERED" : "NO_ANSWER";
  let refused = false;
  let transport = false;
  if (w.answer && !violations.some((v) => v.kind === "slow")) {
    const j = judgeAnswer({ ...w.answer, latencyMs: slowest }, inputStrings, env.boundMs, {
      sessionAccepted: accepted,
    });
    if (!accepted || w.answer.code !== status.OK) statusWord = j.status;
    refused = j.refused;
    transport = j.transport;
    violations.push(...j.violations);
  }
  return {
    target: "agent",
    method: "AgentSession",
    status: statusWord,
    refused,
    latencyMs: slowest || w.elapsedMs,
    violations,
    process: "master",
    transport,
    refs: r.used,
  };
}

async function rawTarget(input: Extract<FuzzInput, { target: "raw" }>, env: TargetEnv): Promise<Outcome> {
  const spec = methodByPath(input.path);
  if (!spec) return fuzzerFailure("raw", input.path, "unknown method path");
  const client = spec.service === "master" ? env.master : env.scheduler;
  const method = `${spec.name}(${input.how})`;
  const inputStrings = longStrings(input.frames);
  const first = Buffer.from(input.frames[0] ?? new Uint8Array(0));
  const base = { target: "raw" as const, method, process: spec.service };
  if (spec.kind === "unary") {
    const a = await rawUnary(client, spec.path, first, new Metadata(), env.boundMs);
    const j = judgeAnswer(a, inputStrings, env.boundMs);
    let statusWord = j.status;
    if (a.code === status.OK) {
      if (spec.service === "scheduler")
        statusWord = await afterSchedulerOk(env, spec, a.response, j.violations);
      else {
        try {
          spec.decodeResponse(a.response ?? Buffer.alloc(0));
        } catch (err) {
          j.violations.push({
            kind: "undecodable-response",
            detail: err instanceof Error ? err.message : String(err),
          });
        }
        if (env.streamIds && (FRAMEWORK_CALLS as readonly string[]).includes(spec.name))
          j.violations.push({
            kind: "caller-not-verified",
            detail: `${spec.name} from raw bytes without a stream id answered OK`,
          });
      }
    }
    return {
      ...base,
      status: statusWord,
      refused: j.refused,
      latencyMs: a.latencyMs,
      violations: j.violations,
      transport: j.transport,
    };
  }
  const call =
    spec.kind === "server-stream"
      ? rawServerStream(client, spec.path, first, new Metadata())
      : rawBidiStream(client, spec.path, new Metadata());
  const w = new StreamWatch(call);
  const violations: Violation[] = [];
  let statusWord = "NO_ANSWER";
  try {
    if (spec.kind === "bidi") {
      const duplex = call as ReturnType<typeof rawBidiStream>;
      for (const f of input.frames) duplex.write(Buffer.from(f));
      duplex.end();
    }
    // a Subscribe that decodes into a valid subscription gets an event: then it is done
    const timedOut = await w.until(() => spec.kind === "server-stream" && w.messages.length > 0, env.boundMs);
    if (w.messages.length > 0 && spec.kind === "server-stream") {
      const { event, error } = firstEvent(w.messages);
      if (error !== undefined) violations.push({ kind: "undecodable-response", detail: error });
      statusWord = event?.event?.$case === "subscribed" ? "SUBSCRIBED" : "EVENT";
      if (event?.event?.$case === "subscribed") env.pools.addFramework(event.event.value.frameworkId);
    } else if (timedOut) {
      violations.push({ kind: "slow", detail: `no status within ${env.boundMs} ms` });
    }
  } finally {
    call.cancel();
  }
  let refused = false;
  let transport = false;
  if (w.answer && statusWord === "NO_ANSWER") {
    const accepted = spec.kind === "bidi" && new RegisteredCounter(violations).update(w.messages) > 0;
    const j = judgeAnswer(w.answer, inputStrings, env.boundMs, { sessionAccepted: accepted });
    statusWord = j.status;
    refused = j.refused;
    transport = j.transport;
    violations.push(...j.violations);
  }
  return {
    ...base,
    status: statusWord,
    refused,
    latencyMs: w.answer?.latencyMs ?? w.elapsedMs,
    violations,
    transport,
  };
}

// ------------------------------------------------------------------ NATS

async function natsTarget(
  input: Extract<FuzzInput, { target: "nats" }> & NatsInput,
  env: TargetEnv,
): Promise<Outcome> {
  const r = new Resolver(env);
  const token = isRef(input.subject) ? r.ref(input.subject) : input.subject;
  const data =
    "bytes" in input.payload
      ? input.payload.bytes
      : new TextEncoder().encode(jsonText(input.payload.json, (x) => r.ref(x)));
  const started = performance.now();
  let statusWord = "STORED";
  const violations: Violation[] = [];
  try {
    await env.js.publish(`drover.status.${token}`, data, { msgID: input.msgId, timeout: env.boundMs });
  } catch (err) {
    // NATS itself refused it (not a Drover process): counted, not a violation of Drover
    statusWord = `NATS_${(err as { code?: string }).code ?? "ERROR"}`;
  }
  const latencyMs = performance.now() - started;
  return {
    target: "nats",
    method: "status",
    status: statusWord,
    refused: statusWord !== "STORED",
    latencyMs,
    violations,
    process: "master",
    refs: r.used,
  };
}

// ------------------------------------------------------------------ config (in process)

const LOADERS = {
  master: { load: loadMasterConfig, schema: MasterConfigSchema },
  scheduler: { load: loadSchedulerConfig, schema: SchedulerConfigSchema },
  agent: { load: loadAgentConfig, schema: AgentConfigSchema },
  cli: { load: loadCliConfig, schema: CliConfigSchema },
} as const;

/**
 * Loads a config from a hostile environment and file: the result must be a config that passes its schema,
 * or the project's typed error whose issues each name a field. Anything else is a violation.
 */
export function checkConfigLoad(
  input: ConfigInput,
  configFile?: string,
): { status: string; violations: Violation[] } {
  const env: Record<string, string> = {};
  for (const [k, v] of input.env) env[k] = v;
  const argv: string[] = [];
  if (configFile !== undefined) argv.push("--config", configFile);
  else if (input.configPath !== undefined) env.DROVER_CONFIG = input.configPath;
  const { load, schema } = LOADERS[input.service];
  const violations: Violation[] = [];
  const inputStrings = longStrings([input.env, input.file ?? ""]);
  try {
    const cfg = load({ env, argv });
    const again = (schema as { safeParse(v: unknown): { success: boolean } }).safeParse(cfg);
    if (!again.success)
      violations.push({ kind: "config-invalid-result", detail: "the loaded config fails its own schema" });
    return { status: "LOADED", violations };
  } catch (err) {
    if (!(err instanceof DroverError)) {
      const e = err as { name?: string; message?: string };
      violations.push({
        kind: "config-untyped-error",
        detail: clipText(`${e?.name ?? typeof err}: ${e?.message ?? String(err)}`),
      });
      return { status: "THROWN", violations };
    }
    if (err instanceof InvalidArgumentError) {
      // a root issue names its fields, quoted, in its message (zod: Unrecognized keys: "a", ""); one that
      // names nothing is fine next to others that do (the "and N more issues" of a bounded list)
      const names = (i: { path: string; message: string }) =>
        (typeof i.path === "string" && i.path !== "") || /"[^"]*"/.test(String(i.message));
      if (!err.issues.some(names))
        violations.push({
          kind: "config-error-names-no-field",
          detail: clipText(JSON.stringify(err.issues)),
        });
      for (const i of err.issues)
        if (typeof i.message !== "string" || i.message === "")
          violations.push({
            kind: "config-error-names-no-field",
            detail: `an issue without a message: ${clipText(JSON.stringify(i))}`,
          });
    }
    const echoed = echoes(err.message, inputStrings);
    if (echoed !== undefined)
      violations.push({
        kind: "echo",
        detail: `the error repeats 1 KiB of the input: ${clipText(JSON.stringify(echoed), 80)}`,
      });
    if (err.message.length > ANSWER_LIMIT)
      violations.push({
        kind: "answer-too-large",
        detail: `the error message is ${err.message.length} chars`,
      });
    return { status: "INVALID", violations };
  }
}

async function configTarget(
  input: Extract<FuzzInput, { target: "config" }>,
  env: TargetEnv,
): Promise<Outcome> {
  let file: string | undefined;
  if (input.file !== undefined) {
    file = join(env.workDir, `config-${randomUUID()}.json`);
    await writeFile(file, input.file, "utf8");
  }
  const started = performance.now();
  const { status: word, violations } = checkConfigLoad(input, file);
  const latencyMs = performance.now() - started;
  if (latencyMs > env.boundMs)
    violations.push({ kind: "slow", detail: `loading took ${Math.round(latencyMs)} ms` });
  return {
    target: "config",
    method: input.service,
    status: word,
    refused: word === "INVALID",
    latencyMs,
    violations,
  };
}

// ------------------------------------------------------------------ CLI input files

/**
 * What `drover app add|update FILE` printed, judged: a refusal is exactly one line "drover: error: …" on
 * stderr that names the field (or says invalid JSON), with no stack trace and no raw control characters.
 */
export function judgeCliRefusal(
  r: { code: number; stdout: string; stderr: string },
  fileText: string,
): Violation[] {
  const v: Violation[] = [];
  const show = clipText(JSON.stringify(r.stderr), 300);
  if (r.stdout !== "") v.push({ kind: "cli-stdout-on-error", detail: clipText(JSON.stringify(r.stdout)) });
  if (!r.stderr.endsWith("\n") || r.stderr.slice(0, -1).includes("\n"))
    v.push({ kind: "cli-not-one-line", detail: show });
  const line = r.stderr.replace(/\n$/, "");
  if (!line.startsWith("drover: error: ")) v.push({ kind: "cli-no-error-prefix", detail: show });
  if (/^\s+at /m.test(r.stderr) || /\.(js|ts|mjs):\d+/.test(r.stderr))
    v.push({ kind: "cli-stack-trace", detail: show });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
  if (/[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]/.test(line)) v.push({ kind: "cli-control-chars", detail: show });
  const local = parseAppSpecJson(fileText);
  if (!local.ok) {
    const named =
      /invalid JSON/.test(line) ||
      local.issues.some(
        (i) =>
          // As the CLI prints a path: on one line, control and bidi characters escaped.
          // (a path over 200 characters is cut with a marker first, as every error bounds its issues).
          (i.path !== "" &&
            line.includes(
              printable(
                clip(i.path, 200)
                  .replace(/\s*\n\s*/g, " ")
                  .trim(),
              ),
            )) ||
          (i.path === "" && line.includes(i.message.slice(0, 40))),
      );
    if (!named)
      v.push({
        kind: "cli-error-names-no-field",
        detail: `${show} names none of ${clipText(JSON.stringify(local.issues.map((i) => i.path)), 120)}`,
      });
  }
  const echoed = echoes(r.stderr, longStrings(fileText));
  if (echoed !== undefined)
    v.push({
      kind: "echo",
      detail: `stderr repeats 1 KiB of the file: ${clipText(JSON.stringify(echoed), 80)}`,
    });
  if (line.length > ANSWER_LIMIT)
    v.push({ kind: "answer-too-large", detail: `the error line is ${line.length} chars` });
  return v;
}

/** The text the CLI reads from the file (`readFileSync(file, "utf8")`). */
export function cliFileText(file: CliInput["file"]): string {
  return "text" in file ? file.text : Buffer.from(file.bytes).toString("utf8");
}

export async function writeCliFile(dir: string, file: CliInput["file"]): Promise<string> {
  const path = join(dir, `app-${randomUUID()}.json`);
  await writeFile(path, "text" in file ? Buffer.from(file.text, "utf8") : file.bytes);
  return path;
}

async function cliTarget(input: Extract<FuzzInput, { target: "cli" }>, env: TargetEnv): Promise<Outcome> {
  const path = await writeCliFile(env.workDir, input.file);
  const args = input.command === "add" ? ["app", "add", path] : ["app", "update", input.id, path];
  const started = performance.now();
  const violations: Violation[] = [];
  const bound = env.boundMs * 4;
  let r: { code: number; stdout: string; stderr: string };
  try {
    r = await runCli(args, env.cliEnv, { timeoutMs: bound });
  } catch (err) {
    return {
      target: "cli",
      method: `app ${input.command}`,
      status: "TIMEOUT",
      refused: false,
      latencyMs: performance.now() - started,
      violations: [{ kind: "slow", detail: clipText(err instanceof Error ? err.message : String(err)) }],
      process: "scheduler",
    };
  }
  const latencyMs = performance.now() - started;
  const text = cliFileText(input.file);
  const local = parseAppSpecJson(text);
  if (r.code === 0) {
    if (!local.ok)
      violations.push({
        kind: "cli-accepted-invalid",
        detail: `exit 0 for a file the schema refuses: ${clipText(formatIssues(local.issues))}`,
      });
    else if (input.command === "add")
      await housekeeping(env, "DeleteApp", { id: local.value.id }, violations);
    else if (local.value.instances > 0)
      await housekeeping(env, "ScaleApp", { id: local.value.id, instances: 0 }, violations);
  } else {
    violations.push(...judgeCliRefusal(r, text));
  }
  return {
    target: "cli",
    method: `app ${input.command}`,
    status: r.code === 0 ? "EXIT_0" : `EXIT_${r.code}`,
    refused: r.code !== 0,
    latencyMs,
    violations,
    process: "scheduler",
  };
}

// ------------------------------------------------------------------ dispatch

/** Which process an input is served by (for crash attribution). */
export function processOf(input: FuzzInput): ProcessKind | undefined {
  switch (input.target) {
    case "scheduler":
    case "cli":
      return "scheduler";
    case "config":
      return undefined;
    case "raw":
      return input.path.startsWith("/drover.v1.Scheduler/") ? "scheduler" : "master";
    default:
      return "master";
  }
}

/** Sends one input to its boundary and classifies the outcome. Never rejects. */
export async function runTarget(input: FuzzInput, env: TargetEnv): Promise<Outcome> {
  try {
    switch (input.target) {
      case "scheduler":
        return await schedulerTarget(input, env);
      case "master":
        return await masterCall(input, env, "master");
      case "subscribe":
        return await subscribeTarget(input, env);
      case "agent":
        return await agentTarget(input, env);
      case "raw":
        return await rawTarget(input, env);
      case "nats":
        return await natsTarget(input, env);
      case "config":
        return await configTarget(input, env);
      case "cli":
        return await cliTarget(input, env);
    }
  } catch (err) {
    const e = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return fuzzerFailure(
      input.target,
      "?",
      `the fuzzer failed on this input: ${clipText(e, 300)}`,
      processOf(input),
    );
  }
}
