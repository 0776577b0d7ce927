/**
 * What the simulated runtime costs: AGENTS executors × TASKS_PER_AGENT tasks on one host, on the real
 * clock, launched at once; prints the time until every task runs and the memory they hold. Figures
 * only, never asserted. Run with --expose-gc for exact heap figures:
 *
 *   node --expose-gc libs/runtime/dist/bench/simulated.js [agents=5000] [tasksPerAgent=20] [cmd="sleep 100000"]
 *
 * A task with an end ahead (`sleep 100000`) holds one timer; one that runs until killed (`sleep infinity`,
 * or no command with the default profile) holds none.
 */

import { SimulatedHost } from "../simulated/host.js";
import { SimulatedExecutor } from "../simulated/simulated.js";

const agents = Number(process.argv[2] ?? 5_000);
const perAgent = Number(process.argv[3] ?? 20);
const cmd = process.argv[4] ?? "sleep 100000";
const gc = (globalThis as { gc?: () => void }).gc;
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

function memory(): { heap: number; rss: number } {
  gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

const before = memory();
const host = new SimulatedHost();
const executors = Array.from(
  { length: agents },
  (_, i) =>
    new SimulatedExecutor({
      agentId: `sim-${i}`,
      host,
      profile: { seed: 1, startLatencyMs: { min: 10, max: 100 } },
    }),
);
let running = 0;
for (const ex of executors) {
  ex.onEvent((e) => {
    if (e.state === "TASK_RUNNING") running++;
  });
}
const withExecutors = memory();

const t0 = performance.now();
const launches: Promise<void>[] = [];
for (const [a, ex] of executors.entries()) {
  for (let i = 0; i < perAgent; i++) {
    launches.push(
      ex.launch({
        taskId: `app.${a}.${i}`,
        appId: "app",
        frameworkId: "fw",
        agentId: ex.agentId,
        image: "drover/busybox:1",
        cmd,
        cpus: 0.1,
        mem: 32,
        env: {},
        labels: {},
      }),
    );
  }
}
const launchedMs = performance.now() - t0;
await Promise.all(launches);
launches.length = 0;
const runningMs = performance.now() - t0;
const withTasks = memory();
const tasks = agents * perAgent;
if (running !== tasks) throw new Error(`${running} of ${tasks} tasks running`);

console.log(
  JSON.stringify({
    agents,
    tasks,
    cmd,
    launchCallsMs: Math.round(launchedMs),
    allRunningMs: Math.round(runningMs),
    executorsHeap: mib(withExecutors.heap - before.heap),
    tasksHeap: mib(withTasks.heap - withExecutors.heap),
    bytesPerTask: Math.round((withTasks.heap - withExecutors.heap) / tasks),
    bytesPerExecutor: Math.round((withExecutors.heap - before.heap) / agents),
    rss: mib(withTasks.rss),
    exactHeap: gc !== undefined,
  }),
);
host.clear();
