/** The classic first framework: run TASKS tasks (default 5), exit when they have all finished. */
import { Framework, type FrameworkOffer, isTerminal } from "@drover/framework";

const env = process.env;
const total = Number(env.TASKS ?? 5);
const task = {
  image: env.IMAGE ?? "drover/busybox:1",
  cmd: env.TASK_CMD ?? "echo hello from $DROVER_TASK; sleep 2",
  cpus: Number(env.CPUS ?? 0.1),
  mem: Number(env.MEM ?? 32),
};
let launched = 0;
const finished = new Map<string, string>();

const fw = new Framework(
  {
    masters: (env.DROVER_MASTERS ?? "127.0.0.1:5050").split(","),
    name: env.NAME ?? "five-tasks",
    role: env.ROLE ?? "*",
  },
  {
    subscribed: (id) => console.log(`subscribed as ${id}`),
    offers: async (offers: FrameworkOffer[]) => {
      for (const offer of offers) {
        const batch = [];
        let { cpus, mem } = offer.resources;
        while (launched < total && cpus + 1e-9 >= task.cpus && mem + 1e-9 >= task.mem) {
          const taskId = `${env.NAME ?? "five-tasks"}-${process.pid}-${++launched}`;
          batch.push({ ...task, taskId, env: { DROVER_TASK: taskId } });
          cpus -= task.cpus;
          mem -= task.mem;
        }
        if (batch.length > 0) await fw.launch(offer, batch);
        else await fw.decline([offer.offerId], launched < total ? 2 : 30);
      }
      if (launched >= total) await fw.suppress();
    },
    update: (u) => {
      console.log(
        `${u.taskId} ${u.state}${u.exitCode !== undefined ? ` exit ${u.exitCode}` : ""} ${u.message}`,
      );
      if (isTerminal(u.state)) finished.set(u.taskId, u.state);
      if (finished.size >= total) {
        const ok = [...finished.values()].every((s) => s === "TASK_FINISHED");
        console.log(`all ${total} tasks done: ${ok ? "all finished" : "some failed"}`);
        fw.stop();
        process.exitCode = ok ? 0 : 1;
      }
    },
  },
);
await fw.run();
