import { z } from "zod";
import {
  currentStepOf,
  type DeploymentPlanStep,
  DeploymentStepSchema,
  doneAtStart,
} from "../deployment/plan.js";
import type { AggregateDef } from "./aggregate.js";
import { AppVersionSchema } from "./app.js";

/**
 * A deployment: what moves apps from one configuration version to the next (Marathon's
 * DeploymentPlan). Keyed by its id (a uuid). In this first slice a deployment has one step of
 * RestartApplication actions: an upgrade (a config change) or a restart (`drover app restart`: a new
 * version with the same definition) of each affected app, carried out by the scheduler's converge
 * loop with core's rollingStep. A scale-only change has no deployment (the converge loop scales at
 * once, as before, and Marathon's ScaleApplication step does no more).
 *
 * Canaries (a Drover extension): a deployment started with `canaryInstances` runs at most that many
 * new instances next to the old ones until DeploymentPromoted (the rolling upgrade goes on) or a
 * cancel (rolled back: the canaries go, the old instances stay).
 *
 * Writes are few: one event to start (in the app's own transaction), a DeploymentProgressed only
 * when what it waits for changes (coalesced by the scheduler), one to end.
 */
export const DeploymentKindSchema = z.enum([
  "upgrade",
  "restart",
  "rollback",
  "group",
  "create",
  "scale",
  "remove",
]);
export type DeploymentKind = z.infer<typeof DeploymentKindSchema>;

/**
 * Deployments that only follow a change the converge loop makes anyway (a new app started, a scale,
 * a removed app's tasks stopped): they lock nothing (a later change of the app supersedes them
 * without force), write no progress (what they wait for is kept in memory) and have no deadline.
 */
export function isTrackingKind(kind: DeploymentKind): boolean {
  return kind === "create" || kind === "scale" || kind === "remove";
}

/**
 * `rolled-back`: cancelled without force, its apps taken back to their previous definitions by the
 * rollback deployment it names (`rollbackId`); `cancelled`: stopped as it was (forced, superseded,
 * or nothing to roll back to); `failed`: its progress deadline passed (rolled back too when it could be).
 */
export const DeploymentStateSchema = z.enum(["running", "succeeded", "cancelled", "failed", "rolled-back"]);
export type DeploymentState = z.infer<typeof DeploymentStateSchema>;

/** One app's counts in the current step (rollingStep's counts). */
export const DeploymentCountsSchema = z.strictObject({
  old: z.number().int().min(0),
  new: z.number().int().min(0),
  /** New instances healthy and ready. */
  newHealthy: z.number().int().min(0),
  /** Old healthy ones not being killed plus newHealthy. */
  healthy: z.number().int().min(0),
  minHealthy: z.number().int().min(0),
  maxInstances: z.number().int().min(0),
  instances: z.number().int().min(0),
});
export type DeploymentCounts = z.infer<typeof DeploymentCountsSchema>;

export const DeploymentAppSchema = z.strictObject({
  appId: z.string().min(1),
  /** The app's lastConfigChangeAt before the change (absent: the app is new). */
  fromVersion: AppVersionSchema.optional(),
  /** The app's lastConfigChangeAt the deployment brings every instance to (a removed app: its last). */
  toVersion: AppVersionSchema,
  /** The latest counts recorded (absent until the first progress). */
  counts: DeploymentCountsSchema.optional(),
  /**
   * A rollback's instances that already run the definition it goes back to count as new: tasks
   * launched at or after `from` (that definition's lastConfigChangeAt) and before `until` (the
   * cancelled deployment's toVersion). So a rollback kills only the new instances and keeps the old.
   */
  sameConfig: z.strictObject({ from: AppVersionSchema, until: AppVersionSchema }).optional(),
});
export type DeploymentApp = z.infer<typeof DeploymentAppSchema>;

/** A deployment app's progress mark (core's deadline.ts), kept so a new leader goes on with its clock. */
export const ProgressMarkSchema = z.strictObject({
  newHealthy: z.number().int().min(0),
  old: z.number().int().min(0),
  sinceMs: z.number(),
});

const id = z.string().regex(/^[0-9a-f-]{36}$/, { error: "must be a uuid" });

export const DeploymentEventSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("DeploymentStarted"),
    id,
    kind: DeploymentKindSchema,
    apps: z.array(DeploymentAppSchema).min(1),
    /** A canary deployment (a Drover extension): at most this many new instances until promoted. */
    canaryInstances: z.number().int().min(1).optional(),
    /**
     * The plan (core's planSteps). Absent in deployments started before plans were kept: one step
     * restarting each app.
     */
    steps: z.array(DeploymentStepSchema).max(10_000).optional(),
    /** The group whose change started it (`drover group add|update|remove`). */
    groupId: z.string().min(1).optional(),
  }),
  z.strictObject({ type: z.literal("DeploymentPromoted") }),
  /** Apps whose action is done (a step of several apps ends when each of its apps' is). */
  z.strictObject({
    type: z.literal("DeploymentActionsDone"),
    appIds: z.array(z.string().min(1)).min(1),
    counts: z.record(z.string(), DeploymentCountsSchema).optional(),
  }),
  /** An ended deployment past the scheduler's retention: it is gone (its events go with the log's retention). */
  z.strictObject({ type: z.literal("DeploymentRemoved") }),
  z.strictObject({
    type: z.literal("DeploymentProgressed"),
    waitingFor: z.string().max(2000),
    /** Counts per app id. */
    counts: z.record(z.string(), DeploymentCountsSchema),
    /** The progress marks per app id of a deployment with a progress deadline. */
    marks: z.record(z.string(), ProgressMarkSchema).optional(),
  }),
  z.strictObject({
    type: z.literal("DeploymentSucceeded"),
    /** The final counts per app id (what `deployment show` prints after the end). */
    counts: z.record(z.string(), DeploymentCountsSchema).optional(),
  }),
  z.strictObject({
    type: z.literal("DeploymentCancelled"),
    force: z.boolean(),
    /** Why: "cancelled by request", "superseded by deployment <id> (force)", "app removed". */
    reason: z.string().max(500),
    /** The rollback deployment a cancel without force started. */
    rollbackId: id.optional(),
  }),
  z.strictObject({
    type: z.literal("DeploymentFailed"),
    reason: z.string().max(2000),
    /** The rollback deployment started (a passed progress deadline). */
    rollbackId: id.optional(),
  }),
]);
export type DeploymentEvent = z.infer<typeof DeploymentEventSchema>;

export const DeploymentRecordSchema = z.strictObject({
  id,
  kind: DeploymentKindSchema,
  state: DeploymentStateSchema,
  apps: z.array(DeploymentAppSchema),
  createdAtMs: z.number(),
  updatedAtMs: z.number(),
  /** What the current step waits for, in words ("" once it ended). */
  waitingFor: z.string(),
  /** Why it ended when it did not succeed. */
  reason: z.string().optional(),
  force: z.boolean().optional(),
  rollbackId: id.optional(),
  /** A canary deployment not promoted yet. */
  canaryInstances: z.number().int().min(1).optional(),
  /** The plan (absent in records from before plans were kept: see stepsOf). */
  steps: z.array(DeploymentStepSchema).optional(),
  /** The apps whose action is done. */
  doneApps: z.array(z.string()).optional(),
  /** The progress marks last recorded per app (a deployment with a progress deadline). */
  marks: z.record(z.string(), ProgressMarkSchema).optional(),
  groupId: z.string().optional(),
});
export type DeploymentRecord = z.infer<typeof DeploymentRecordSchema>;

export const DeploymentAggregate: AggregateDef<DeploymentRecord, DeploymentEvent> = {
  name: "deployment",
  eventSchema: DeploymentEventSchema,
  stateSchema: DeploymentRecordSchema,
  apply(state, event, { atMs }) {
    if (event.type === "DeploymentStarted")
      return {
        id: event.id,
        kind: event.kind,
        state: "running",
        apps: event.apps,
        createdAtMs: atMs,
        updatedAtMs: atMs,
        waitingFor: "",
        ...(event.canaryInstances !== undefined ? { canaryInstances: event.canaryInstances } : {}),
        ...(event.steps ? { steps: event.steps } : {}),
        ...(event.groupId ? { groupId: event.groupId } : {}),
      };
    // Only an ended deployment is removed.
    if (event.type === "DeploymentRemoved") return state?.state === "running" ? state : undefined;
    // Events after the end change nothing (a late progress never reopens a deployment).
    if (state?.state !== "running") return state;
    switch (event.type) {
      case "DeploymentProgressed":
        return {
          ...state,
          updatedAtMs: atMs,
          waitingFor: event.waitingFor,
          apps: state.apps.map((a) => {
            const c = event.counts[a.appId];
            return c ? { ...a, counts: c } : a;
          }),
          ...(event.marks ? { marks: { ...state.marks, ...event.marks } } : {}),
        };
      case "DeploymentActionsDone": {
        const done = new Set([...(state.doneApps ?? []), ...event.appIds]);
        const counts = event.counts ?? {};
        return {
          ...state,
          updatedAtMs: atMs,
          doneApps: [...done].sort(),
          apps: state.apps.map((a) => {
            const c = counts[a.appId];
            return c ? { ...a, counts: c } : a;
          }),
        };
      }
      case "DeploymentPromoted": {
        const { canaryInstances: _, ...rest } = state;
        return { ...rest, updatedAtMs: atMs };
      }
      case "DeploymentSucceeded": {
        const counts = event.counts ?? {};
        return {
          ...state,
          state: "succeeded",
          updatedAtMs: atMs,
          waitingFor: "",
          apps: state.apps.map((a) => {
            const c = counts[a.appId];
            return c ? { ...a, counts: c } : a;
          }),
        };
      }
      case "DeploymentCancelled":
        return {
          ...state,
          state: event.rollbackId && !event.force ? "rolled-back" : "cancelled",
          updatedAtMs: atMs,
          waitingFor: "",
          reason: event.reason,
          force: event.force,
          ...(event.rollbackId ? { rollbackId: event.rollbackId } : {}),
        };
      case "DeploymentFailed":
        return {
          ...state,
          state: "failed",
          updatedAtMs: atMs,
          waitingFor: "",
          reason: event.reason,
          ...(event.rollbackId ? { rollbackId: event.rollbackId } : {}),
        };
    }
  },
};

/** A deployment's plan: its steps, or for one from before plans were kept, one restarting each app. */
export function stepsOf(d: Pick<DeploymentRecord, "steps" | "apps">): DeploymentPlanStep[] {
  return (
    d.steps ?? [{ actions: d.apps.map((a) => ({ action: "RestartApplication" as const, appId: a.appId })) }]
  );
}

/** The index of the step being carried out (steps.length once every action is done). */
export function currentStep(d: Pick<DeploymentRecord, "steps" | "apps" | "doneApps">): number {
  return currentStepOf(stepsOf(d), new Set(d.doneApps ?? []));
}

/** Whether every action of `d` is done, once `appIds` are. */
export function allActionsDone(
  d: Pick<DeploymentRecord, "steps" | "apps" | "doneApps">,
  appIds: readonly string[] = [],
): boolean {
  const done = new Set([...(d.doneApps ?? []), ...appIds]);
  return stepsOf(d).every((s) => s.actions.every((a) => doneAtStart(a) || done.has(a.appId)));
}
