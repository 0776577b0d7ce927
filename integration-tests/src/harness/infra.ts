import "./env.js";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { GenericContainer, type StartedTestContainer, Wait } from "testcontainers";
import { repoRoot } from "./paths.js";

const execFileAsync = promisify(execFile);

/** Label on every container the harness starts through testcontainers (deploy/test.sh cleans by it). */
export const TEST_LABEL = { "drover.test": "integration" } as const;

export const ETCD_IMAGE = "drover/etcd:3.4";
export const NATS_IMAGE = "drover/nats:2.9";
export const TASK_IMAGE = "drover/busybox:1";

export interface Infra {
  /** etcd client URL, `http://127.0.0.1:<mapped port>` */
  etcdEndpoint: string;
  /** NATS URL (JetStream enabled), `nats://127.0.0.1:<mapped port>` */
  natsUrl: string;
  /** The containers themselves, for tests that stop, pause or restart them. */
  etcdContainer: StartedTestContainer;
  natsContainer: StartedTestContainer;
  /** Stops and removes both containers (idempotent). */
  stop(): Promise<void>;
}

let images: Promise<void> | undefined;

/** Builds the local images (deploy/images/build.sh) once per process; the script keeps existing images. */
export function ensureImages(): Promise<void> {
  images ??= execFileAsync("bash", [join(repoRoot, "deploy/images/build.sh")], {
    cwd: repoRoot,
    timeout: 300_000,
  }).then(
    () => undefined,
    (err: unknown) => {
      images = undefined;
      const e = err as { message?: string; stderr?: string };
      throw new Error(`deploy/images/build.sh failed: ${e.stderr || e.message || String(err)}`);
    },
  );
  return images;
}

function startEtcd(): Promise<StartedTestContainer> {
  return new GenericContainer(ETCD_IMAGE)
    .withCommand([
      "--listen-client-urls",
      "http://0.0.0.0:2379",
      "--advertise-client-urls",
      "http://0.0.0.0:2379",
      "--data-dir",
      "/data/etcd",
    ])
    .withExposedPorts(2379)
    .withLabels({ ...TEST_LABEL })
    .withWaitStrategy(Wait.forLogMessage(/ready to serve client requests/))
    .withStartupTimeout(60_000)
    .start();
}

function startNats(): Promise<StartedTestContainer> {
  return new GenericContainer(NATS_IMAGE)
    .withCommand(["-js", "-sd", "/data/nats"])
    .withExposedPorts(4222)
    .withLabels({ ...TEST_LABEL })
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
    .withStartupTimeout(60_000)
    .start();
}

async function stopQuietly(container: StartedTestContainer | undefined): Promise<void> {
  if (!container) return;
  try {
    await container.stop({ timeout: 0, remove: true }); // throwaway data: kill at once
  } catch {
    // already stopped or removed
  }
}

/** Starts a fresh etcd and a fresh NATS (JetStream) in containers. */
export async function startInfra(): Promise<Infra> {
  await ensureImages();
  const [etcd, nats] = await Promise.allSettled([startEtcd(), startNats()]);
  if (etcd.status === "rejected" || nats.status === "rejected") {
    await stopQuietly(etcd.status === "fulfilled" ? etcd.value : undefined);
    await stopQuietly(nats.status === "fulfilled" ? nats.value : undefined);
    const reason = etcd.status === "rejected" ? etcd.reason : nats.status === "rejected" ? nats.reason : "";
    throw new Error(
      `starting etcd and NATS failed: ${reason instanceof Error ? reason.message : String(reason)}`,
    );
  }
  const etcdContainer = etcd.value;
  const natsContainer = nats.value;
  let stopping: Promise<void> | undefined;
  return {
    etcdEndpoint: `http://127.0.0.1:${etcdContainer.getMappedPort(2379)}`,
    natsUrl: `nats://127.0.0.1:${natsContainer.getMappedPort(4222)}`,
    etcdContainer,
    natsContainer,
    stop() {
      stopping ??= Promise.all([stopQuietly(etcdContainer), stopQuietly(natsContainer)]).then(
        () => undefined,
      );
      return stopping;
    },
  };
}
