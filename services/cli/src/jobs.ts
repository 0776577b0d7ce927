/**
 * `drover job ...`: Metronome's jobs through the schedulers' `/v1/jobs` HTTP API (any replica
 * forwards to the leader; DROVER_SCHEDULERS_HTTP lists them). A definition is checked here first with
 * core's parser, so a wrong or unsupported field is one line naming it before anything is sent.
 * `job run ID --follow` follows the run live and exits 0 if it succeeded, 1 otherwise.
 */
import { readFileSync } from "node:fs";
import { errorMessage, type FieldIssue, InvalidArgumentError, NotFoundError } from "@drover/common";
import { parseJob, parseJson, parseSchedule } from "@drover/core";
import { ago, table } from "./table.js";

export const JOB_USAGE = `  job add FILE.json          create a job (Metronome's JSON; "schedules" in it are created too)
  job update FILE.json       replace a job's definition (its schedules are kept)
  job list                   jobs, their active runs and their history counts
  job show ID                one job: definition, schedules, active runs, history
  job remove ID [--stop-runs]
                             delete a job (--stop-runs: its active runs end FAILED)
  job run ID [--follow]      start a run now; --follow: follow it live, exit 1 unless it succeeds
  job runs ID                a job's active runs and its recent finished ones
  job stop ID RUN            stop an active run (it ends FAILED, its task is killed)
  job schedule add ID FILE.json   add a schedule (cron, timezone, concurrencyPolicy ...)
  job schedule list ID       a job's schedules and when each is next due
  job schedule remove ID SCHEDULE`;

export interface JobIo {
  out(value: unknown, text: () => string): void;
  usage(message: string): Error;
  /** Status lines of --follow (stderr with --json, so stdout stays JSON). */
  progress(line: string): void;
}

interface RunJson {
  id: string;
  jobId: string;
  status: string;
  createdAt: string | null;
  completedAt: string | null;
  tasks: { id: string; status?: string; exitCode?: number; message?: string }[];
  message?: string;
  exitCode?: number;
}

interface HistoryEntry {
  id: string;
  createdAt: string;
  finishedAt: string;
  tasks: string[];
  message?: string;
  exitCode?: number;
}

interface JobJson {
  id: string;
  description?: string;
  run: { cmd?: string; args?: string[]; docker?: { image: string }; cpus: number; mem: number };
  activeRuns?: RunJson[];
  schedules?: ScheduleJson[];
  history?: {
    successCount: number;
    failureCount: number;
    lastSuccessAt: string | null;
    lastFailureAt: string | null;
    successfulFinishedRuns: HistoryEntry[];
    failedFinishedRuns: HistoryEntry[];
  };
  historySummary?: { successCount: number; failureCount: number; lastSuccessAt: string | null };
}

interface ScheduleJson {
  id: string;
  cron: string;
  timezone: string;
  concurrencyPolicy: string;
  enabled: boolean;
  startingDeadlineSeconds: number;
  nextRunAt: string | null;
}

/** The API's error body as one line naming the fields (`run.cpus: must be >= 0.01`). */
function apiError(status: number, body: unknown): Error {
  const b = (body ?? {}) as { message?: string; details?: { path?: string; errors?: string[] }[] };
  if (Array.isArray(b.details) && b.details.length > 0) {
    const issues: FieldIssue[] = b.details.flatMap((d) =>
      (d.errors ?? []).map((message) => ({
        path: (d.path ?? "/")
          .replace(/^\//, "")
          .replace(/\((\d+)\)/g, "[$1]")
          .replaceAll("/", "."),
        message,
      })),
    );
    if (status === 422 || status === 400) return new InvalidArgumentError(issues);
  }
  const message = b.message ?? `HTTP ${status}`;
  return status === 404 ? new NotFoundError("", { message }) : new Error(message);
}

/** Calls the jobs API on the first replica that answers (a 503 or a refused connection tries the next). */
export class JobsApi {
  constructor(private readonly addresses: string[]) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let last: unknown;
    for (const addr of this.addresses) {
      let res: Response;
      try {
        res = await fetch(`http://${addr}${path}`, {
          method,
          headers: { "content-type": "application/json", accept: "application/json" },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(15_000),
        });
      } catch (err) {
        last = new Error(`scheduler ${addr} did not answer: ${errorMessage(err)}`);
        continue;
      }
      const text = await res.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = { message: text.slice(0, 300) };
      }
      if (res.status === 503) {
        last = apiError(503, json);
        continue;
      }
      if (res.status >= 400) throw apiError(res.status, json);
      return json as T;
    }
    throw last instanceof Error ? last : new Error("no scheduler address (DROVER_SCHEDULERS_HTTP)");
  }
}

function readJson(file: string | undefined, io: JobIo): unknown {
  if (!file) throw io.usage("missing FILE.json");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read ${file}: ${errorMessage(err)}`);
  }
  const v = parseJson(text);
  if (!v.ok) throw new InvalidArgumentError(v.issues);
  return v.value;
}

const enc = encodeURIComponent;
const when = (iso: string | null | undefined) => (iso ? ago(Date.parse(iso)) : "-");

function runRow(r: RunJson | (HistoryEntry & { status: string })): string[] {
  const created = "createdAt" in r ? r.createdAt : null;
  const done = "completedAt" in r ? r.completedAt : "finishedAt" in r ? r.finishedAt : null;
  const last = "tasks" in r && Array.isArray(r.tasks) ? r.tasks[r.tasks.length - 1] : undefined;
  const task = typeof last === "string" ? last : (last?.id ?? "-");
  const detail = "message" in r && r.message ? r.message : "";
  return [r.id, r.status, when(created), when(done), task, detail];
}

function jobText(j: JobJson): string {
  const lines = [
    `id:          ${j.id}`,
    ...(j.description ? [`description: ${j.description}`] : []),
    `run:         ${j.run.cmd ?? (j.run.args ?? []).join(" ")}${j.run.docker ? `  (image ${j.run.docker.image})` : ""}  cpus ${j.run.cpus}  mem ${j.run.mem}`,
  ];
  if (j.schedules && j.schedules.length > 0) lines.push("schedules:", scheduleTable(j.schedules));
  if (j.activeRuns && j.activeRuns.length > 0)
    lines.push(
      "active runs:",
      table(["RUN", "STATUS", "CREATED", "DONE", "TASK", ""], j.activeRuns.map(runRow)),
    );
  if (j.history) {
    const h = j.history;
    lines.push(`history:     ${h.successCount} succeeded, ${h.failureCount} failed`);
    const rows = [
      ...h.successfulFinishedRuns.map((r) => ({ ...r, status: "SUCCESS" })),
      ...h.failedFinishedRuns.map((r) => ({ ...r, status: "FAILED" })),
    ].sort((a, b) => b.finishedAt.localeCompare(a.finishedAt));
    if (rows.length > 0)
      lines.push(table(["RUN", "STATUS", "CREATED", "DONE", "TASK", "MESSAGE"], rows.map(runRow)));
  }
  return lines.join("\n");
}

function scheduleTable(s: ScheduleJson[]): string {
  return table(
    ["SCHEDULE", "CRON", "TIMEZONE", "POLICY", "ENABLED", "NEXT RUN"],
    s.map((x) => [x.id, x.cron, x.timezone, x.concurrencyPolicy, String(x.enabled), x.nextRunAt ?? "-"]),
  );
}

const FINAL = new Set(["SUCCESS", "FAILED"]);

/** Follows a run until it ends; its final state. */
async function followRun(api: JobsApi, jobId: string, runId: string, io: JobIo): Promise<RunJson> {
  let last = "";
  for (;;) {
    let r: RunJson;
    try {
      r = await api.call<RunJson>("GET", `/v1/jobs/${enc(jobId)}/runs/${enc(runId)}`);
    } catch (err) {
      // Ended and not in the history (DROVER_SCHEDULER_JOB_HISTORY_KEPT 0, or pruned): its end is unknown.
      if (err instanceof NotFoundError)
        throw new Error(
          `run ${runId} of job ${jobId} is no longer known (ended, and not kept in the history)`,
        );
      // A leader failover: the next replica answers soon.
      io.progress(`(waiting for the scheduler: ${errorMessage(err)})`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    const t = r.tasks[r.tasks.length - 1];
    const line = `${r.status}${t ? `  task ${t.id} ${t.status ?? ""}${t.exitCode !== undefined ? ` exit ${t.exitCode}` : ""}` : ""}${r.message ? `  ${r.message}` : ""}`;
    if (line !== last) io.progress(`${new Date().toISOString()}  run ${runId}  ${line}`);
    last = line;
    if (FINAL.has(r.status)) return r;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

export async function jobCommand(
  api: JobsApi,
  cmd: string | undefined,
  rest: string[],
  io: JobIo,
): Promise<number> {
  const flag = (name: string) => {
    const i = rest.indexOf(name);
    if (i < 0) return false;
    rest.splice(i, 1);
    return true;
  };
  switch (cmd) {
    case "add":
    case "update": {
      const body = readJson(rest[0], io);
      const v = parseJob(body);
      if (!v.ok) throw new InvalidArgumentError(v.issues);
      const j =
        cmd === "add"
          ? await api.call<JobJson>("POST", "/v1/jobs", body)
          : await api.call<JobJson>("PUT", `/v1/jobs/${enc(v.value.spec.id)}`, body);
      io.out(j, () => `job ${j.id} ${cmd === "add" ? "created" : "updated"}`);
      return 0;
    }
    case "list": {
      const jobs = await api.call<JobJson[]>("GET", "/v1/jobs?embed=activeRuns,historySummary,schedules");
      io.out(jobs, () =>
        table(
          ["ID", "ACTIVE", "SUCCEEDED", "FAILED", "LAST SUCCESS", "SCHEDULES"],
          jobs.map((j) => [
            j.id,
            String(j.activeRuns?.length ?? 0),
            String(j.historySummary?.successCount ?? 0),
            String(j.historySummary?.failureCount ?? 0),
            when(j.historySummary?.lastSuccessAt),
            (j.schedules ?? []).map((s) => `${s.id} (${s.cron})`).join(", ") || "-",
          ]),
        ),
      );
      return 0;
    }
    case "show": {
      const id = rest[0];
      if (!id) throw io.usage("missing job ID");
      const j = await api.call<JobJson>("GET", `/v1/jobs/${enc(id)}?embed=activeRuns,schedules,history`);
      io.out(j, () => jobText(j));
      return 0;
    }
    case "remove": {
      const stop = flag("--stop-runs");
      const id = rest[0];
      if (!id) throw io.usage("missing job ID");
      const j = await api.call<JobJson>("DELETE", `/v1/jobs/${enc(id)}?stopCurrentJobRuns=${stop}`);
      io.out(j, () => `job ${id} removed`);
      return 0;
    }
    case "run": {
      const follow = flag("--follow");
      const id = rest[0];
      if (!id) throw io.usage("missing job ID");
      const started = await api.call<RunJson>("POST", `/v1/jobs/${enc(id)}/runs`);
      if (!follow) {
        io.out(started, () => `run ${started.id} of job ${id} started`);
        return 0;
      }
      io.progress(`run ${started.id} of job ${id} started`);
      const end = await followRun(api, id, started.id, io);
      io.out(end, () => `run ${end.id}: ${end.status}${end.message ? ` (${end.message})` : ""}`);
      return end.status === "SUCCESS" ? 0 : 1;
    }
    case "runs": {
      const id = rest[0];
      if (!id) throw io.usage("missing job ID");
      const j = await api.call<JobJson>("GET", `/v1/jobs/${enc(id)}?embed=activeRuns,history`);
      const finished = [
        ...(j.history?.successfulFinishedRuns ?? []).map((r) => ({ ...r, status: "SUCCESS" })),
        ...(j.history?.failedFinishedRuns ?? []).map((r) => ({ ...r, status: "FAILED" })),
      ].sort((a, b) => b.finishedAt.localeCompare(a.finishedAt));
      io.out({ active: j.activeRuns ?? [], finished }, () =>
        table(
          ["RUN", "STATUS", "CREATED", "DONE", "TASK", "MESSAGE"],
          [...(j.activeRuns ?? []).map(runRow), ...finished.map(runRow)],
        ),
      );
      return 0;
    }
    case "stop": {
      const [id, runId] = rest;
      if (!id || !runId) throw io.usage("usage: job stop ID RUN");
      const r = await api.call<RunJson>("POST", `/v1/jobs/${enc(id)}/runs/${enc(runId)}/actions/stop`);
      io.out(r, () => `run ${runId} of job ${id} stopped`);
      return 0;
    }
    case "schedule": {
      const [sub, id, arg] = rest;
      if (!id) throw io.usage("usage: job schedule add|list|remove ID ...");
      if (sub === "add") {
        const body = readJson(arg, io);
        const v = parseSchedule(body);
        if (!v.ok) throw new InvalidArgumentError(v.issues);
        const s = await api.call<ScheduleJson>("POST", `/v1/jobs/${enc(id)}/schedules`, body);
        io.out(s, () => `schedule ${s.id} of job ${id} added; next run ${s.nextRunAt ?? "never"}`);
        return 0;
      }
      if (sub === "list") {
        const s = await api.call<ScheduleJson[]>("GET", `/v1/jobs/${enc(id)}/schedules`);
        io.out(s, () => scheduleTable(s));
        return 0;
      }
      if (sub === "remove") {
        if (!arg) throw io.usage("usage: job schedule remove ID SCHEDULE");
        await api.call("DELETE", `/v1/jobs/${enc(id)}/schedules/${enc(arg)}`);
        io.out({ removed: arg }, () => `schedule ${arg} of job ${id} removed`);
        return 0;
      }
      throw io.usage(`unknown job schedule command ${sub ?? ""}`);
    }
    default:
      throw io.usage(`unknown job command ${cmd ?? ""}`);
  }
}
