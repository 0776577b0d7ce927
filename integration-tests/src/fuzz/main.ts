/**
 * `npm run fuzz -- --count N --seed S --concurrency C`: a long seeded fuzz run against a fresh cluster.
 *
 *   --count N          inputs to send (default 5000)
 *   --seed S           the seed (default: a random one; always printed first)
 *   --concurrency C    inputs in flight at once (default 8)
 *   --targets a,b      only these targets (scheduler, master, subscribe, agent, raw, nats, config, cli)
 *   --replay I         send only input I of the seed (its fast-check path), and print it in full
 *   --bound-ms MS      latency bound of one call (default 5000)
 *   --max-restarts N   restarts of crashed processes before the run stops (default 5)
 *   --no-crash-replay  do not replay the inputs in flight at a crash
 *   --json FILE        also write the report as JSON
 *
 * Exit status: 0 without violations, 1 with violations, 2 for a usage error, 3 if the run itself failed.
 */
import { writeFile } from "node:fs/promises";
import { fuzzInput, inputsAt, renderInput, TARGETS, type TargetName } from "./arbitraries.js";
import { formatReport, runFuzz } from "./run.js";

const USAGE =
  "usage: npm run fuzz -- [--count N] [--seed S] [--concurrency C] [--targets a,b] [--replay I] " +
  "[--bound-ms MS] [--max-restarts N] [--no-crash-replay] [--json FILE]";

function fail(message: string): never {
  process.stderr.write(`fuzz: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function intArg(name: string, raw: string | undefined, min: number): number {
  if (raw === undefined || !/^\d+$/.test(raw)) fail(`${name} needs a whole number`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) fail(`${name} must be at least ${min}`);
  return n;
}

interface Args {
  count: number;
  seed: number;
  concurrency: number;
  targets: TargetName[];
  replay?: number;
  boundMs: number;
  maxRestarts: number;
  crashReplay: boolean;
  json?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    count: 5000,
    seed: Math.floor(Math.random() * 2 ** 31),
    concurrency: 8,
    targets: [...TARGETS],
    boundMs: 5000,
    maxRestarts: 5,
    crashReplay: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) fail(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case "--count":
        args.count = intArg(a, value(), 1);
        break;
      case "--seed":
        args.seed = intArg(a, value(), 0);
        break;
      case "--concurrency":
        args.concurrency = intArg(a, value(), 1);
        break;
      case "--replay":
        args.replay = intArg(a, value(), 0);
        break;
      case "--bound-ms":
        args.boundMs = intArg(a, value(), 100);
        break;
      case "--max-restarts":
        args.maxRestarts = intArg(a, value(), 0);
        break;
      case "--no-crash-replay":
        args.crashReplay = false;
        break;
      case "--json":
        args.json = value();
        break;
      case "--targets": {
        const list = value()
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean);
        for (const t of list) if (!(TARGETS as readonly string[]).includes(t)) fail(`unknown target ${t}`);
        if (list.length === 0) fail("--targets needs at least one target");
        args.targets = list as TargetName[];
        break;
      }
      case "--help":
      case "-h":
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        fail(`unknown argument ${a}`);
    }
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
process.stdout.write(`fuzz: seed ${args.seed}\n`);
if (args.replay !== undefined) {
  const [input] = inputsAt(fuzzInput(args.targets), args.seed, args.replay, 1);
  process.stdout.write(
    `fuzz: replaying input #${args.replay} (fast-check: { seed: ${args.seed}, path: "${args.replay}" }):\n`,
  );
  process.stdout.write(`${renderInput(input, 4000)}\n`);
}
try {
  const report = await runFuzz({
    seed: args.seed,
    count: args.replay !== undefined ? 1 : args.count,
    start: args.replay ?? 0,
    concurrency: args.concurrency,
    targets: args.targets,
    boundMs: args.boundMs,
    maxRestarts: args.maxRestarts,
    replayCrashes: args.crashReplay,
    log: (line) => process.stdout.write(`fuzz: ${line}\n`),
  });
  process.stdout.write(`${formatReport(report, { listAll: true })}\n`);
  if (args.json) await writeFile(args.json, JSON.stringify({ ...report, text: undefined }, null, 2));
  process.exit(report.violations.length > 0 || report.stoppedEarly ? 1 : 0);
} catch (err) {
  process.stderr.write(
    `fuzz: the run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(3);
}
