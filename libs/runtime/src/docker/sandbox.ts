/**
 * Task sandboxes on the agent: one directory per task under `<workDir>/sandboxes`, bind-mounted in
 * the task's container at /mnt/mesos/sandbox (spec.ts SANDBOX_PATH). The fetcher downloads into it
 * before the container starts; it is removed with the container (unless the agent keeps sandboxes).
 * Its path is a function of the task id alone, so a restarted agent finds it again.
 */
import { chown, lchown, lstat, mkdir, readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { containerName } from "./labels.js";

export class Sandboxes {
  readonly root: string;

  constructor(workDir: string) {
    this.root = join(resolve(workDir), "sandboxes");
  }

  /** The sandbox of a task: `<workDir>/sandboxes/drover-<taskId>` (the task id made safe, as the container name). */
  path(taskId: string): string {
    return join(this.root, containerName(taskId));
  }

  /** Creates the task's (empty, 0755) sandbox; an existing one is kept as it is. */
  async create(taskId: string): Promise<string> {
    const dir = this.path(taskId);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    return dir;
  }

  /** Removes the task's sandbox and everything in it; a missing one is fine. */
  async remove(taskId: string): Promise<void> {
    await rm(this.path(taskId), { recursive: true, force: true, maxRetries: 2 });
  }
}

/**
 * For a task that runs as a numeric `uid[:gid]`: hands its sandbox (and what was fetched into it) to
 * that user, as Mesos does, so the task can write there. A user *name* exists only inside the image;
 * the sandbox then stays root's (see README).
 */
export async function chownSandbox(dir: string, user: string | undefined): Promise<void> {
  const m = user === undefined ? null : /^(\d+)(?::(\d+))?$/.exec(user);
  if (!m) return;
  const uid = Number(m[1]);
  const gid = m[2] === undefined ? uid : Number(m[2]);
  const walk = async (p: string): Promise<void> => {
    const st = await lstat(p);
    // A symbolic link is changed itself, never what it points to (which may be outside the sandbox).
    if (st.isSymbolicLink()) return lchown(p, uid, gid);
    await chown(p, uid, gid);
    if (!st.isDirectory()) return;
    for (const entry of await readdir(p)) await walk(join(p, entry));
  };
  await walk(dir);
}
