/**
 * Resident apps (with local persistent volumes), as Marathon runs them: every instance has a
 * reservation on one agent, where its volumes live; a task that replaces it runs on that agent and
 * mounts the same volumes. Pure: which launches go to which reservation, and the volumes' names.
 */
import type { Reservation } from "./events/residency.js";
import { appIdToKey } from "./marathon/path-id.js";

/**
 * Of `launch` tasks to start now, which reuse a reservation (free: no active task uses it; each
 * runs on its reservation's agent) and how many need a new one. Free reservations are used first,
 * in the order they were made, so that scaling down and up again finds the old data.
 */
export function residentLaunches(
  reservations: readonly Reservation[],
  inUse: ReadonlySet<string>,
  launch: number,
): { pinned: Reservation[]; fresh: number } {
  const free = reservations.filter((r) => !inUse.has(r.id));
  const pinned = free.slice(0, Math.max(0, launch));
  return { pinned, fresh: Math.max(0, launch - pinned.length) };
}

/**
 * The reservation of each task placed on one agent: the free reservations on that agent first
 * (`pinned` ones were placed there on purpose), then new ones (`newId()` each). Returns the
 * reservation ids in the order of the tasks, and the new reservations.
 */
export function assignReservations(
  agentId: string,
  hostname: string,
  tasks: number,
  pinnedOnAgent: readonly Reservation[],
  newId: () => string,
  nowMs: number,
): { ids: string[]; created: Reservation[] } {
  const ids: string[] = [];
  const created: Reservation[] = [];
  for (let i = 0; i < tasks; i++) {
    const reuse = pinnedOnAgent[i];
    if (reuse !== undefined) ids.push(reuse.id);
    else {
      const r = { id: newId(), agentId, hostname, createdAtMs: nowMs };
      created.push(r);
      ids.push(r.id);
    }
  }
  return { ids, created };
}

/**
 * The Docker volume name of the persistent volume at `containerPath` of one reservation:
 * `drover-<app key>-<reservation>-<path>-<hash>`, within Docker's name rules
 * (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`); two paths never share a name (the hash is of the exact path).
 */
export function persistentVolumeName(appId: string, reservationId: string, containerPath: string): string {
  const path = containerPath
    .replace(/[^a-zA-Z0-9_.-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  return `drover-${appIdToKey(appId).slice(0, 80)}-${reservationId}-${path || "root"}-${fnv1a(containerPath)}`;
}

/** True when the app has local persistent volumes (Marathon: a resident app). */
export function isResident(app: { container?: { volumes: readonly object[] } | undefined }): boolean {
  return (app.container?.volumes ?? []).some((v) => "persistent" in v);
}

function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}
