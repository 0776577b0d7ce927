/**
 * The fuzzer's own gRPC plumbing: requests are encoded here (or not at all: raw bytes) and sent with
 * identity serializers, so that whatever bytes the generator made reach the server as they are, and
 * answers are judged on their status, details and trailers before anything decodes them.
 */
import {
  AcceptRequest,
  AcceptResponse,
  AcknowledgeRequest,
  AcknowledgeResponse,
  AgentCommand,
  AgentMessage,
  AppResponse,
  CancelDeploymentRequest,
  CancelDeploymentResponse,
  CreateAppRequest,
  DeclineRequest,
  DeclineResponse,
  DeleteAppRequest,
  DeleteAppResponse,
  DeploymentResponse,
  FrameworkEvent,
  GetAppRequest,
  GetAppVersionRequest,
  GetAppVersionResponse,
  GetDeploymentRequest,
  GetQueueRequest,
  GetQueueResponse,
  GetStateRequest,
  GetStateResponse,
  KillRequest,
  KillResponse,
  ListAgentsRequest,
  ListAgentsResponse,
  ListAppsRequest,
  ListAppsResponse,
  ListAppTasksRequest,
  ListAppTasksResponse,
  ListAppVersionsRequest,
  ListAppVersionsResponse,
  ListDeploymentsRequest,
  ListDeploymentsResponse,
  ListFrameworksRequest,
  ListFrameworksResponse,
  ListTasksRequest,
  ListTasksResponse,
  type MessageFns,
  PromoteDeploymentRequest,
  ReconcileRequest,
  ReconcileResponse,
  RestartAppRequest,
  ReviveRequest,
  ReviveResponse,
  ScaleAppRequest,
  SubscribeRequest,
  SuppressRequest,
  SuppressResponse,
  UpdateAppRequest,
} from "@drover/proto";
import {
  Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  credentials,
  type Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";

/** Client channel options: no size limit of our own (the server's limits are under test), quick reconnects. */
export const FUZZ_CLIENT_OPTIONS = {
  "grpc.max_receive_message_length": -1,
  "grpc.max_send_message_length": -1,
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1_000,
} as const;

export function rawClient(address: string): Client {
  return new Client(address, credentials.createInsecure(), FUZZ_CLIENT_OPTIONS);
}

const identity = (b: Buffer): Buffer => b;

/** A method: its path, and codecs that take the generator's partial objects. */
export interface MethodSpec {
  service: "master" | "scheduler";
  name: string;
  path: string;
  kind: "unary" | "server-stream" | "bidi";
  /** ts-proto partial → bytes (throws if the encoder refuses a value). */
  encode(partial: unknown): Buffer;
  decodeResponse(bytes: Buffer): unknown;
}

/**
 * ts-proto's fromPartial copies maps entry by entry with `acc[key] = value`, which drops an own
 * `__proto__` key; the generator's maps are put back so that the key reaches the wire.
 */
function restoreMaps(msg: unknown, partial: unknown): void {
  if (typeof msg !== "object" || msg === null || typeof partial !== "object" || partial === null) return;
  if (Array.isArray(msg) && Array.isArray(partial)) {
    msg.forEach((m, i) => {
      restoreMaps(m, partial[i]);
    });
    return;
  }
  const m = msg as Record<string, unknown>;
  const p = partial as Record<string, unknown>;
  for (const key of Object.keys(m)) {
    if ((key === "env" || key === "labels") && typeof p[key] === "object" && p[key] !== null) {
      m[key] = p[key];
    } else restoreMaps(m[key], p[key]);
  }
}

function spec<Req, Res>(
  service: MethodSpec["service"],
  name: string,
  kind: MethodSpec["kind"],
  req: MessageFns<Req>,
  res: MessageFns<Res>,
): MethodSpec {
  const pkg = service === "master" ? "Master" : "Scheduler";
  return {
    service,
    name,
    path: `/drover.v1.${pkg}/${name}`,
    kind,
    encode(partial) {
      const msg = req.fromPartial(partial as never);
      restoreMaps(msg, partial);
      return Buffer.from(req.encode(msg).finish());
    },
    decodeResponse: (bytes) => res.decode(bytes),
  };
}

export const MASTER_METHODS: Record<string, MethodSpec> = {
  AgentSession: spec("master", "AgentSession", "bidi", AgentMessage, AgentCommand),
  Subscribe: spec("master", "Subscribe", "server-stream", SubscribeRequest, FrameworkEvent),
  Accept: spec("master", "Accept", "unary", AcceptRequest, AcceptResponse),
  Decline: spec("master", "Decline", "unary", DeclineRequest, DeclineResponse),
  Revive: spec("master", "Revive", "unary", ReviveRequest, ReviveResponse),
  Suppress: spec("master", "Suppress", "unary", SuppressRequest, SuppressResponse),
  Kill: spec("master", "Kill", "unary", KillRequest, KillResponse),
  Acknowledge: spec("master", "Acknowledge", "unary", AcknowledgeRequest, AcknowledgeResponse),
  Reconcile: spec("master", "Reconcile", "unary", ReconcileRequest, ReconcileResponse),
  ListAgents: spec("master", "ListAgents", "unary", ListAgentsRequest, ListAgentsResponse),
  ListTasks: spec("master", "ListTasks", "unary", ListTasksRequest, ListTasksResponse),
  ListFrameworks: spec("master", "ListFrameworks", "unary", ListFrameworksRequest, ListFrameworksResponse),
  GetState: spec("master", "GetState", "unary", GetStateRequest, GetStateResponse),
};

export const SCHEDULER_METHODS: Record<string, MethodSpec> = {
  CreateApp: spec("scheduler", "CreateApp", "unary", CreateAppRequest, AppResponse),
  GetApp: spec("scheduler", "GetApp", "unary", GetAppRequest, AppResponse),
  ListApps: spec("scheduler", "ListApps", "unary", ListAppsRequest, ListAppsResponse),
  UpdateApp: spec("scheduler", "UpdateApp", "unary", UpdateAppRequest, AppResponse),
  ScaleApp: spec("scheduler", "ScaleApp", "unary", ScaleAppRequest, AppResponse),
  DeleteApp: spec("scheduler", "DeleteApp", "unary", DeleteAppRequest, DeleteAppResponse),
  ListTasks: spec("scheduler", "ListTasks", "unary", ListAppTasksRequest, ListAppTasksResponse),
  GetQueue: spec("scheduler", "GetQueue", "unary", GetQueueRequest, GetQueueResponse),
  ListAppVersions: spec(
    "scheduler",
    "ListAppVersions",
    "unary",
    ListAppVersionsRequest,
    ListAppVersionsResponse,
  ),
  GetAppVersion: spec("scheduler", "GetAppVersion", "unary", GetAppVersionRequest, GetAppVersionResponse),
  RestartApp: spec("scheduler", "RestartApp", "unary", RestartAppRequest, AppResponse),
  ListDeployments: spec(
    "scheduler",
    "ListDeployments",
    "unary",
    ListDeploymentsRequest,
    ListDeploymentsResponse,
  ),
  GetDeployment: spec("scheduler", "GetDeployment", "unary", GetDeploymentRequest, DeploymentResponse),
  CancelDeployment: spec(
    "scheduler",
    "CancelDeployment",
    "unary",
    CancelDeploymentRequest,
    CancelDeploymentResponse,
  ),
  PromoteDeployment: spec(
    "scheduler",
    "PromoteDeployment",
    "unary",
    PromoteDeploymentRequest,
    DeploymentResponse,
  ),
};

export function methodByPath(path: string): MethodSpec | undefined {
  return [...Object.values(MASTER_METHODS), ...Object.values(SCHEDULER_METHODS)].find((m) => m.path === path);
}

/** The end of a call as the client saw it. */
export interface Answer {
  /** gRPC status code (0 = OK). */
  code: number;
  details: string;
  /** Trailers (and headers, for an error), as strings; binary values as hex. */
  metadata: Record<string, string[]>;
  /** The response message (unary OK). */
  response?: Buffer;
  latencyMs: number;
}

export function statusName(code: number): string {
  return status[code] ?? `CODE_${code}`;
}

export function metadataRecord(md: Metadata | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!md) return out;
  for (const [key, values] of Object.entries(md.toJSON())) {
    out[key] = values.map((v) => (typeof v === "string" ? v : Buffer.from(v).toString("hex")));
  }
  return out;
}

/** Sends `body` as the request of a unary method; never rejects. */
export function rawUnary(
  client: Client,
  path: string,
  body: Buffer,
  metadata: Metadata,
  deadlineMs: number,
): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve) => {
    try {
      client.makeUnaryRequest(
        path,
        identity,
        identity,
        body,
        metadata,
        { deadline: new Date(Date.now() + deadlineMs) },
        (err: ServiceError | null, res?: Buffer) => {
          const latencyMs = performance.now() - started;
          if (err) {
            resolve({
              code: err.code,
              details: err.details ?? "",
              metadata: metadataRecord(err.metadata),
              latencyMs,
            });
          } else {
            resolve({
              code: status.OK,
              details: "",
              metadata: {},
              latencyMs,
              ...(res ? { response: res } : {}),
            });
          }
        },
      );
    } catch (err) {
      resolve({
        code: -1,
        details: `client could not send: ${err instanceof Error ? err.message : String(err)}`,
        metadata: {},
        latencyMs: performance.now() - started,
      });
    }
  });
}

export function rawServerStream(
  client: Client,
  path: string,
  body: Buffer,
  metadata: Metadata,
  deadlineMs?: number,
): ClientReadableStream<Buffer> {
  return client.makeServerStreamRequest(
    path,
    identity,
    identity,
    body,
    metadata,
    deadlineMs === undefined ? {} : { deadline: new Date(Date.now() + deadlineMs) },
  );
}

export function rawBidiStream(
  client: Client,
  path: string,
  metadata: Metadata,
  deadlineMs?: number,
): ClientDuplexStream<Buffer, Buffer> {
  return client.makeBidiStreamRequest(
    path,
    identity,
    identity,
    metadata,
    deadlineMs === undefined ? {} : { deadline: new Date(Date.now() + deadlineMs) },
  );
}

/**
 * Watches a stream: the messages it delivered and its final status. `until` waits (at most `timeoutMs`)
 * for a condition on the messages, or for the end of the stream.
 */
export class StreamWatch {
  readonly messages: Buffer[] = [];
  answer: Answer | undefined;
  private readonly started = performance.now();
  private readonly waiters = new Set<() => void>();

  constructor(readonly stream: ClientReadableStream<Buffer> | ClientDuplexStream<Buffer, Buffer>) {
    stream.on("data", (b: Buffer) => {
      this.messages.push(b);
      this.notify();
    });
    stream.on("status", (s: { code: number; details: string; metadata: Metadata }) => {
      this.answer ??= {
        code: s.code,
        details: s.details ?? "",
        metadata: metadataRecord(s.metadata),
        latencyMs: performance.now() - this.started,
      };
      this.notify();
    });
    // an error also arrives as a status; this listener keeps it from being thrown
    stream.on("error", () => undefined);
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves true if `timeoutMs` passed before `cond()` held or the stream ended. */
  until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    if (cond() || this.answer) return Promise.resolve(false);
    return new Promise((resolve) => {
      const check = () => {
        if (cond() || this.answer) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(false);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        resolve(true);
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  get elapsedMs(): number {
    return performance.now() - this.started;
  }
}
