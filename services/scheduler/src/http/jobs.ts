/**
 * Metronome's `/v1/jobs` API (../shared/marathon/API.md, Metronome section) on the scheduler's HTTP
 * server, next to Marathon's `/v2`: jobs (list with `embed=activeRuns,schedules,history,
 * historySummary`, create, get, update, delete), runs (list, start, get, stop) and schedules (list,
 * create, get, update, delete); `/v1/queue`; `/v0/scheduled-jobs` (a job with its schedules). Bodies are checked by core's job and schedule parsers (a wrong or
 * unsupported field is a 422 naming it); the leader's JobStore and JobRunner do the rest.
 * Registered as a server plugin whose paths are forwarded to the leader like `/v2`.
 */
import { InvalidArgumentError, NotFoundError, UnavailableError } from "@drover/common";
import {
  type JobRecord,
  type JobRunRecord,
  parseJob,
  parseSchedule,
  type RunSummary,
  type ScheduleRecord,
} from "@drover/core";
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from "fastify";
import type { TaskView } from "../framework.js";
import type { JobRunner } from "../jobs/runner.js";
import type { JobStore } from "../jobs/store.js";
import { BadRequestError } from "./errors.js";
import { bool, type Query, values } from "./query.js";

/** What the routes need of the leader (undefined on a replica that does not lead, or not yet). */
export interface JobsLeader {
  store: JobStore;
  runner: JobRunner;
  tasks: Pick<TaskView, "ofApp">;
}

const EMBEDS = ["activeRuns", "schedules", "history", "historySummary"] as const;
type Embed = (typeof EMBEDS)[number];

function embedsOf(q: Query): Set<Embed> {
  const out = new Set<Embed>();
  for (const raw of values(q, "embed"))
    for (const item of raw.split(",")) {
      const name = item.trim();
      if (name === "") continue;
      if (!(EMBEDS as readonly string[]).includes(name))
        throw new BadRequestError(
          `query parameter embed: unknown '${name.slice(0, 60)}' (known: ${EMBEDS.join(", ")})`,
        );
      out.add(name as Embed);
    }
  return out;
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export function scheduleJson(r: ScheduleRecord): Record<string, unknown> {
  return { ...r.spec, nextRunAt: iso(r.nextDueMs) };
}

export function runJson(l: JobsLeader, run: JobRunRecord): Record<string, unknown> {
  const { status, tasks } = l.runner.statusOf(run, l.tasks);
  return {
    id: run.runId,
    jobId: run.jobId,
    status,
    createdAt: iso(run.createdAtMs),
    completedAt: null,
    tasks: [
      ...run.ended.map((t) => ({
        id: t.taskId,
        status: t.state,
        completedAt: iso(t.atMs),
        ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
        ...(t.message ? { message: t.message } : {}),
      })),
      ...tasks.map((t) => ({
        id: t.taskId,
        status: t.state,
        startedAt: iso(t.runningSinceMs ?? t.createdAtMs),
      })),
    ],
    ...(run.trigger.kind === "schedule"
      ? { schedule: run.trigger.scheduleId, dueAt: iso(run.trigger.dueMs) }
      : {}),
    ...(run.deadlineAtMs !== undefined ? { deadlineAt: iso(run.deadlineAtMs) } : {}),
  };
}

/** A finished run (from the history) as a JobRun. */
function finishedRunJson(jobId: string, r: RunSummary): Record<string, unknown> {
  return {
    id: r.id,
    jobId,
    status: r.status,
    createdAt: iso(r.createdAtMs),
    completedAt: iso(r.finishedAtMs),
    tasks: r.tasks.map((id) => ({ id })),
    ...(r.message !== undefined ? { message: r.message } : {}),
    ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
  };
}

function historyEntry(r: RunSummary): Record<string, unknown> {
  return {
    id: r.id,
    createdAt: iso(r.createdAtMs),
    finishedAt: iso(r.finishedAtMs),
    tasks: r.tasks,
    ...(r.message !== undefined ? { message: r.message } : {}),
    ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
  };
}

function summaryJson(j: JobRecord) {
  const h = j.history;
  return {
    successCount: h.successCount,
    failureCount: h.failureCount,
    lastSuccessAt: iso(h.lastSuccessAtMs),
    lastFailureAt: iso(h.lastFailureAtMs),
  };
}

export function jobJson(l: JobsLeader, j: JobRecord, embed: ReadonlySet<Embed>): Record<string, unknown> {
  return {
    ...j.spec,
    ...(embed.has("activeRuns") ? { activeRuns: l.store.runs(j.spec.id).map((r) => runJson(l, r)) } : {}),
    ...(embed.has("schedules") ? { schedules: j.schedules.map(scheduleJson) } : {}),
    ...(embed.has("historySummary") ? { historySummary: summaryJson(j) } : {}),
    ...(embed.has("history")
      ? {
          history: {
            ...summaryJson(j),
            successfulFinishedRuns: j.history.successfulFinishedRuns.map(historyEntry),
            failedFinishedRuns: j.history.failedFinishedRuns.map(historyEntry),
          },
        }
      : {}),
  };
}

function checked<T>(
  v: { ok: true; value: T } | { ok: false; issues: { path: string; message: string }[] },
): T {
  if (!v.ok) throw new InvalidArgumentError(v.issues);
  return v.value;
}

function objectBody(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== "object" || Array.isArray(body))
    throw new InvalidArgumentError([{ path: "", message: "must be a JSON object" }]);
  return body as Record<string, unknown>;
}

export function jobsRoutes(deps: { leader(): JobsLeader | undefined }): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const leader = (): JobsLeader => {
      const l = deps.leader();
      if (!l) throw new UnavailableError("the scheduler leader is still starting; retry");
      return l;
    };
    type Req = { params: Record<string, string>; query: unknown; body: unknown };
    const q = (req: Req) => (req.query ?? {}) as Query;

    app.get("/v1/jobs", async (req) => {
      const l = leader();
      const embed = embedsOf(q(req as Req));
      return l.store.list().map((j) => jobJson(l, j, embed));
    });

    app.post("/v1/jobs", async (req, reply: FastifyReply) => {
      const l = leader();
      const { spec, schedules } = checked(parseJob((req as Req).body));
      const j = await l.store.create(spec, schedules);
      l.runner.cronSoon();
      return reply.code(201).send({
        ...j.spec,
        ...(j.schedules.length > 0 ? { schedules: j.schedules.map(scheduleJson) } : {}),
      });
    });

    app.get("/v1/jobs/:jobId", async (req) => {
      const l = leader();
      const r = req as Req;
      return jobJson(l, l.store.get(r.params.jobId ?? ""), embedsOf(q(r)));
    });

    app.put("/v1/jobs/:jobId", async (req) => {
      const l = leader();
      const r = req as Req;
      const id = r.params.jobId ?? "";
      const body = objectBody(r.body);
      if (body.id !== undefined && body.id !== id)
        throw new InvalidArgumentError([{ path: "id", message: `must be the job id of the path (${id})` }]);
      // Schedules in the body are ignored (Metronome: existing schedules are kept).
      const { schedules: _, ...rest } = body;
      const v = parseJob({ ...rest, id });
      const spec = checked(v).spec;
      const j = await l.store.update(spec);
      return j.spec;
    });

    app.delete("/v1/jobs/:jobId", async (req) => {
      const l = leader();
      const r = req as Req;
      const j = await l.store.remove(r.params.jobId ?? "", bool(q(r), "stopCurrentJobRuns", false));
      l.runner.cronSoon();
      return j.spec;
    });

    app.get("/v1/jobs/:jobId/runs", async (req) => {
      const l = leader();
      const id = (req as Req).params.jobId ?? "";
      l.store.get(id);
      return l.store.runs(id).map((r) => runJson(l, r));
    });

    app.post("/v1/jobs/:jobId/runs", async (req, reply: FastifyReply) => {
      const l = leader();
      const run = await l.runner.startNow((req as Req).params.jobId ?? "");
      return reply.code(201).send(runJson(l, run));
    });

    app.get("/v1/jobs/:jobId/runs/:runId", async (req) => {
      const l = leader();
      const { jobId = "", runId = "" } = (req as Req).params;
      const job = l.store.get(jobId);
      const run = l.store.run(jobId, runId);
      if (run) return runJson(l, run);
      const done = [...job.history.successfulFinishedRuns, ...job.history.failedFinishedRuns].find(
        (r) => r.id === runId,
      );
      if (done) return finishedRunJson(jobId, done);
      throw new NotFoundError(`run ${runId}`, {
        message: `Job run '${runId}' of job '${jobId}' does not exist`,
      });
    });

    app.post("/v1/jobs/:jobId/runs/:runId/actions/stop", async (req) => {
      const l = leader();
      const { jobId = "", runId = "" } = (req as Req).params;
      l.store.get(jobId);
      const run = await l.runner.stopRun(jobId, runId);
      if (!run)
        throw new NotFoundError(`run ${runId}`, {
          message: `Job run '${runId}' of job '${jobId}' is not active`,
        });
      return { ...runJson(l, run), status: "FAILED" };
    });

    app.get("/v1/jobs/:jobId/schedules", async (req) => {
      const l = leader();
      return l.store.get((req as Req).params.jobId ?? "").schedules.map(scheduleJson);
    });

    app.post("/v1/jobs/:jobId/schedules", async (req, reply: FastifyReply) => {
      const l = leader();
      const r = req as Req;
      const s = checked(parseSchedule(r.body));
      const rec = await l.store.addSchedule(r.params.jobId ?? "", s);
      l.runner.cronSoon();
      return reply.code(201).send(scheduleJson(rec));
    });

    app.get("/v1/jobs/:jobId/schedules/:scheduleId", async (req) => {
      const l = leader();
      const { jobId = "", scheduleId = "" } = (req as Req).params;
      return scheduleJson(l.store.schedule(jobId, scheduleId));
    });

    app.put("/v1/jobs/:jobId/schedules/:scheduleId", async (req) => {
      const l = leader();
      const r = req as Req;
      const { jobId = "", scheduleId = "" } = r.params;
      const body = objectBody(r.body);
      if (body.id !== undefined && body.id !== scheduleId)
        throw new InvalidArgumentError([
          { path: "id", message: `must be the schedule id of the path (${scheduleId})` },
        ]);
      const s = checked(parseSchedule({ ...body, id: scheduleId }));
      const rec = await l.store.updateSchedule(jobId, s);
      l.runner.cronSoon();
      return scheduleJson(rec);
    });

    app.delete("/v1/jobs/:jobId/schedules/:scheduleId", async (req, reply: FastifyReply) => {
      const l = leader();
      const { jobId = "", scheduleId = "" } = (req as Req).params;
      await l.store.removeSchedule(jobId, scheduleId);
      l.runner.cronSoon();
      return reply.code(200).send();
    });

    // Metronome's v0: a job with its schedules in one body.
    app.post("/v0/scheduled-jobs", async (req, reply: FastifyReply) => {
      const l = leader();
      const { spec, schedules } = checked(parseJob((req as Req).body));
      const j = await l.store.create(spec, schedules);
      l.runner.cronSoon();
      return reply.code(201).send({ ...j.spec, schedules: j.schedules.map(scheduleJson) });
    });

    app.put("/v0/scheduled-jobs/:jobId", async (req) => {
      const l = leader();
      const r = req as Req;
      const id = r.params.jobId ?? "";
      const body = objectBody(r.body);
      if (body.id !== undefined && body.id !== id)
        throw new InvalidArgumentError([{ path: "id", message: `must be the job id of the path (${id})` }]);
      const { spec, schedules } = checked(parseJob({ ...body, id, schedules: body.schedules ?? [] }));
      const j = await l.store.replace(spec, schedules);
      l.runner.cronSoon();
      return { ...j.spec, schedules: j.schedules.map(scheduleJson) };
    });

    app.get("/v1/queue", async () => {
      const l = leader();
      const out: { jobId: string; runs: { runId: string }[] }[] = [];
      for (const j of l.store.list()) {
        const waiting = l.store
          .runs(j.spec.id)
          .filter((r) => l.runner.statusOf(r, l.tasks).status === "INITIAL")
          .map((r) => ({ runId: r.runId }));
        if (waiting.length > 0) out.push({ jobId: j.spec.id, runs: waiting });
      }
      return out;
    });
  };
}
