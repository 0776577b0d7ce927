/**
 * What a task's container needs on the agent before it is created: the user-defined network it joins
 * (which must exist: Marathon expects the operator to have made it) and its local persistent volumes
 * (named Docker volumes, made here if absent and kept when the container is removed). Each returns
 * a reason worded for the task's TASK_FAILED message, or undefined; none throws.
 */
import type Dockerode from "dockerode";
import { dockerErrorMessage, isNotFound } from "./docker-errors.js";
import { LABEL_AGENT_ID, LABEL_APP_ID } from "./labels.js";
import type { PersistentVolumePlan } from "./spec.js";

/** The size the scheduler asked for, in MiB (recorded only: Docker's local driver cannot limit it). */
export const LABEL_VOLUME_SIZE_MIB = "drover.volume.size_mib";
/** Marks a volume as a Drover persistent volume. */
export const LABEL_VOLUME = "drover.volume";
/** The task whose launch created the volume (later tasks of the app reuse it). */
export const LABEL_VOLUME_CREATED_BY = "drover.volume.created_by_task";

export async function checkNetwork(docker: Dockerode, name: string): Promise<string | undefined> {
  try {
    await docker.getNetwork(name).inspect();
    return undefined;
  } catch (err) {
    if (isNotFound(err))
      return `network ${name} does not exist on this agent (a container network must be created before tasks join it)`;
    return `network ${name}: ${dockerErrorMessage(err)}`;
  }
}

/**
 * Makes sure each persistent volume exists: an existing one is used as it is (its data is the point),
 * a new one is created with the drover labels (agent, app, the task that created it, the size asked).
 */
export async function ensureVolumes(
  docker: Dockerode,
  volumes: readonly PersistentVolumePlan[],
  owner: { agentId: string; appId: string; taskId: string; extraLabels: Record<string, string> },
): Promise<string | undefined> {
  for (const v of volumes) {
    try {
      await docker.getVolume(v.name).inspect();
      continue;
    } catch (err) {
      if (!isNotFound(err)) return `volume ${v.name}: ${dockerErrorMessage(err)}`;
    }
    try {
      await docker.createVolume({
        Name: v.name,
        Driver: "local",
        Labels: {
          ...owner.extraLabels,
          [LABEL_VOLUME]: "persistent",
          [LABEL_AGENT_ID]: owner.agentId,
          [LABEL_APP_ID]: owner.appId,
          [LABEL_VOLUME_CREATED_BY]: owner.taskId,
          [LABEL_VOLUME_SIZE_MIB]: String(v.sizeMib),
        },
      });
    } catch (err) {
      return `volume ${v.name}: ${dockerErrorMessage(err)}`;
    }
  }
  return undefined;
}

/** The image's own WORKDIR ("" when it declares none); undefined when it cannot be inspected. */
export async function imageWorkingDir(docker: Dockerode, image: string): Promise<string | undefined> {
  try {
    const info = await docker.getImage(image).inspect();
    return info.Config?.WorkingDir ?? "";
  } catch {
    return undefined;
  }
}
