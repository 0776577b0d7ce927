/** Making sure a task's image is present: inspect first, pull only when absent. */
import type Dockerode from "dockerode";
import { dockerErrorMessage, isNotFound } from "./docker-errors.js";
import { destroyStream } from "./docker-events.js";

/** undefined when the image is present or was pulled, else Docker's reason (never throws). */
export async function ensureImage(
  docker: Dockerode,
  image: string,
  timeoutMs: number,
): Promise<string | undefined> {
  try {
    await docker.getImage(image).inspect();
    return undefined;
  } catch (err) {
    if (!isNotFound(err)) return dockerErrorMessage(err);
  }
  return pullImage(docker, image, timeoutMs);
}

/**
 * Pulls `image`, following the progress stream to its end. A failure can surface as a rejected
 * request, a stream error or an `error` entry inside the stream; the first one wins.
 */
export function pullImage(docker: Dockerode, image: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let done = false;
    let stream: NodeJS.ReadableStream | undefined;
    const settle = (error: string | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (error !== undefined && stream) destroyStream(stream);
      resolve(error);
    };
    const timer = setTimeout(() => settle(`pull of ${image} timed out after ${timeoutMs} ms`), timeoutMs);
    docker.pull(image).then(
      (s) => {
        stream = s;
        if (done) {
          destroyStream(s);
          return;
        }
        docker.modem.followProgress(
          s,
          (err) => settle(err ? dockerErrorMessage(err) : undefined),
          (progress: unknown) => {
            const error = pullProgressError(progress);
            if (error !== undefined) settle(error);
          },
        );
      },
      (err: unknown) => settle(dockerErrorMessage(err)),
    );
  });
}

/** Docker reports a failed pull inside the progress stream as {"error": "...", "errorDetail": {...}}. */
export function pullProgressError(progress: unknown): string | undefined {
  if (typeof progress !== "object" || progress === null) return undefined;
  const p = progress as { error?: unknown; errorDetail?: { message?: unknown } };
  if (typeof p.errorDetail?.message === "string" && p.errorDetail.message !== "")
    return p.errorDetail.message;
  if (typeof p.error === "string" && p.error !== "") return p.error;
  return undefined;
}
