/**
 * One health check or readiness probe against a task: the I/O half of @drover/core's `health.ts`,
 * which decides what a result means. Nothing here throws or rejects: every error is a result.
 *
 * Upstream: HTTP/HTTPS/TCP as Marathon's `HealthCheckWorker.scala` (GET, status 200–399, HTTPS
 * without certificate verification, TCP = a connection within the timeout); MESOS_* and COMMAND as
 * Mesos's `checker_process.cpp` (curl waits for the final answer; `/bin/sh -c`, exit 0 healthy);
 * readiness as `ReadinessCheckExecutorImpl.scala`.
 */
import type { IncomingHttpHeaders } from "node:http";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import {
  type CheckResult,
  classifyHttpStatus,
  type HealthCheckSpec,
  healthCheckPath,
  isMesosLevel,
  READINESS_BODY_LIMIT_BYTES,
  type ReadinessCheckSpec,
  type ReadinessProbe,
} from "@drover/core";
import type { CommandRunner } from "./command.js";

/** Where a check connects: resolved by the caller from the check's `port` / `portIndex` and the task's ports. */
export interface CheckTarget {
  host: string;
  port: number;
}

export interface RunCheckOptions {
  /** Required for COMMAND checks: runs the command where the task runs. */
  commandRunner?: CommandRunner | undefined;
  /** Aborting ends the check at once (sockets destroyed, command killed); its result is then meaningless. */
  signal?: AbortSignal | undefined;
  /** Why there is no target (the failure cause of a check that needs one); default: no effective port. */
  unresolved?: string | undefined;
}

const unhealthy = (cause: string): CheckResult => ({ kind: "unhealthy", cause });

/**
 * Runs one check within `timeoutMs`. `target` is needed for every protocol but COMMAND; undefined
 * (the port could not be resolved) is a failure, as upstream ("unable to get the task's effectivePort").
 */
export async function runCheck(
  spec: HealthCheckSpec,
  target: CheckTarget | undefined,
  timeoutMs: number,
  options: RunCheckOptions = {},
): Promise<CheckResult> {
  const { signal } = options;
  if (signal?.aborted) return unhealthy("aborted");
  const noTarget = options.unresolved ?? "unable to get the task's effective port";
  switch (spec.protocol) {
    case "COMMAND":
      return commandCheck(spec, timeoutMs, options);
    case "TCP":
    case "MESOS_TCP":
      if (!target) return unhealthy(noTarget);
      return tcpCheck(target, timeoutMs, signal);
    case "HTTP":
    case "HTTPS":
    case "MESOS_HTTP":
    case "MESOS_HTTPS": {
      if (!target) return unhealthy(noTarget);
      const tls = spec.protocol === "HTTPS" || spec.protocol === "MESOS_HTTPS";
      // Mesos (curl) waits past informational answers for the final one; Marathon takes the first.
      const mesos = isMesosLevel(spec.protocol);
      const answer = await httpGet({ tls, ...target, path: healthCheckPath(spec.path) }, timeoutMs, signal, {
        stopAtInformation: !mesos,
        bodyLimit: 0,
      });
      if (answer.kind === "error") return unhealthy(answer.message);
      return classifyHttpStatus(answer.status, !mesos && spec.ignoreHttp1xx === true, answer.statusMessage);
    }
    default:
      return unhealthy(`unknown health check protocol ${String(spec.protocol)}`);
  }
}

async function commandCheck(
  spec: HealthCheckSpec,
  timeoutMs: number,
  { commandRunner, signal }: RunCheckOptions,
): Promise<CheckResult> {
  const command = spec.command?.value;
  if (!command) return unhealthy("COMMAND health check without a command");
  if (!commandRunner) return unhealthy("no command runner for this task");
  const outcome = await commandRunner.run(command, { timeoutMs, signal });
  switch (outcome.kind) {
    case "exited":
      if (outcome.exitCode === 0) return { kind: "healthy" };
      return unhealthy(
        `command exited with status ${outcome.exitCode}${outcome.output ? `: ${lastLine(outcome.output)}` : ""}`,
      );
    case "timeout":
      return unhealthy(`command timed out after ${timeoutMs} ms`);
    case "aborted":
      return unhealthy("aborted");
    case "error":
      return unhealthy(`command could not run: ${outcome.message}`);
  }
}

function tcpCheck(
  target: CheckTarget,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<CheckResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port: target.port });
    const finish = once(resolve, () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.destroy();
    });
    const timer = setTimeout(() => finish(unhealthy(`no connection within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => finish(unhealthy("aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => finish({ kind: "healthy" }));
    socket.on("error", (err) => finish(unhealthy(err.message)));
  });
}

/**
 * A readiness probe: GET `<protocol>://host:port<path>` without certificate verification; the
 * status, media type and at most READINESS_BODY_LIMIT_BYTES of the body, all within `timeoutMs`.
 * No answer: an error "could not query <url>: <why>" (Marathon's body for its 504).
 */
export async function probeReadiness(
  spec: ReadinessCheckSpec,
  target: CheckTarget | undefined,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ReadinessProbe> {
  if (!target) return { kind: "error", message: `no port named ${spec.portName}` };
  const tls = spec.protocol === "HTTPS";
  const path = healthCheckPath(spec.path);
  const url = `${tls ? "https" : "http"}://${target.host}:${target.port}${path}`;
  const answer = await httpGet({ tls, ...target, path }, timeoutMs, signal, {
    stopAtInformation: false,
    bodyLimit: READINESS_BODY_LIMIT_BYTES,
  });
  if (answer.kind === "error") return { kind: "error", message: `could not query ${url}: ${answer.message}` };
  const contentType = (answer.headers["content-type"] ?? "").split(";")[0]?.trim() ?? "";
  return { kind: "response", response: { status: answer.status, contentType, body: answer.body } };
}

type HttpAnswer =
  | { kind: "answer"; status: number; statusMessage: string; headers: IncomingHttpHeaders; body: string }
  | { kind: "error"; message: string };

/**
 * One GET on its own connection (no keep-alive), ended within `timeoutMs` whatever happens. With
 * `stopAtInformation`, a 1xx answer (100, 102, 103…, or 101 Switching Protocols) is the answer;
 * otherwise informational answers are skipped. The body is read up to `bodyLimit` bytes (0: not at all).
 */
function httpGet(
  to: { tls: boolean; host: string; port: number; path: string },
  timeoutMs: number,
  signal: AbortSignal | undefined,
  opts: { stopAtInformation: boolean; bodyLimit: number },
): Promise<HttpAnswer> {
  if (signal?.aborted) return Promise.resolve({ kind: "error", message: "aborted" });
  return new Promise((resolve) => {
    const options: https.RequestOptions = {
      host: to.host,
      port: to.port,
      path: to.path,
      method: "GET",
      agent: false,
      headers: { "user-agent": "drover-health-check", accept: "*/*" },
    };
    const req = to.tls ? https.request({ ...options, rejectUnauthorized: false }) : http.request(options);
    const finish = once(resolve, () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      req.destroy();
    });
    const timer = setTimeout(
      () => finish({ kind: "error", message: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    const onAbort = () => finish({ kind: "error", message: "aborted" });
    signal?.addEventListener("abort", onAbort, { once: true });
    const early = (status: number, statusMessage: string, headers: IncomingHttpHeaders) =>
      finish({ kind: "answer", status, statusMessage, headers, body: "" });
    req.on("information", (info) => {
      if (opts.stopAtInformation) early(info.statusCode, info.statusMessage, info.headers);
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      early(res.statusCode ?? 101, res.statusMessage ?? "", res.headers);
    });
    req.on("response", (res) => {
      // An answer cut short is no answer (and once finished, destroying the request cuts it: ignored).
      res.on("error", (err) => finish({ kind: "error", message: err.message }));
      const status = res.statusCode ?? 0;
      const statusMessage = res.statusMessage ?? "";
      if (opts.bodyLimit <= 0) return early(status, statusMessage, res.headers);
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () =>
        finish({
          kind: "answer",
          status,
          statusMessage,
          headers: res.headers,
          body: Buffer.concat(chunks).subarray(0, opts.bodyLimit).toString("utf8"),
        });
      res.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= opts.bodyLimit) done();
      });
      res.once("end", done);
    });
    req.on("error", (err) => finish({ kind: "error", message: err.message }));
    req.end();
  });
}

/** A resolver that resolves once, running `cleanup` first. */
function once<T>(resolve: (v: T) => void, cleanup: () => void): (v: T) => void {
  let done = false;
  return (v) => {
    if (done) return;
    done = true;
    cleanup();
    resolve(v);
  };
}

function lastLine(output: string): string {
  const line = output.split("\n").at(-1) ?? "";
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
