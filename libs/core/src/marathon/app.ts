/**
 * Marathon's app definition, as a pure module: the schema of every field of Marathon 1.11's `App`
 * (mesosphere/marathon @ 90619da70d79, `docs/docs/rest-api/public/api/v2/types/app.raml` and the
 * types it uses), the conversion of deprecated formats, Marathon's defaults and validation rules,
 * and what Drover refuses. Nothing here is wired into the services yet.
 *
 * - `normalizeApp(input)`: JSON value → canonical `AppDefinition` (Marathon's shape, every default
 *   filled in, id absolute) or the issues `{path, message}`, Drover's refusals included.
 * - `toMarathonJson(def)`: what `GET /v2/apps/{id}` prints (Marathon's field order and omissions).
 *   `normalizeApp(toMarathonJson(def))` is `def` again.
 * - task.ts: resources, host ports, image, command and environment of one task.
 *
 * Old formats, converted as Marathon converts them (`api/v2/AppNormalization.scala`):
 *
 * | given                                          | becomes                                                      |
 * | ---------------------------------------------- | ------------------------------------------------------------ |
 * | `ports: [p, …]`                                | `portDefinitions: [{port: p, protocol: "tcp"}, …]`           |
 * | `uris: [u, …]`                                 | `fetch: [{uri: u, extract: <archive ext>, executable: false, cache: false}]` |
 * | `container.docker.network` HOST/BRIDGE/USER    | `networks: [{mode: host / container/bridge / container}]`    |
 * | `container.docker.portMappings`                | `container.portMappings`                                     |
 * | `ipAddress: {networkName, labels}`             | `networks: [{mode: "container", name, labels}]` (MESOS container if none) |
 * | `ipAddress.discovery.ports`                    | `container.portMappings` (MESOS containers only)             |
 * | `container` without `type`                     | `type: "DOCKER"`                                             |
 * | `upgradeStrategy` with one value missing       | the missing one is 1, as Marathon ≤ 1.4 read it (1.11 requires both) |
 * | `residency` without persistent volumes         | dropped (it has no effect upstream either); its strategy rules still apply |
 * | `version`, `versionInfo`, AppInfo counters     | ignored (read-only output of `GET /v2/apps`)                 |
 * | a property whose value is `null`               | absent                                                       |
 *
 * Drover's old app JSON (`AppSpecSchema`) is Marathon's minus most fields, and is accepted as such,
 * with one difference: old Drover `ports` listed fixed host ports. `ports` with a non-zero entry and
 * no `requirePorts` therefore gets `requirePorts: true` (Marathon would take the numbers as service
 * ports with dynamic host ports); with `requirePorts` given, Marathon's meaning applies.
 *
 * Refused (issue `not supported: <why>` on the field; see refusals.ts):
 *
 * | field                                  | when                                  | why                                                          |
 * | -------------------------------------- | ------------------------------------- | ------------------------------------------------------------ |
 * | `secrets`                              | not empty                             | no secret store yet                                          |
 * | `env.<NAME>`                           | `{"secret": …}`                       | no secret store yet                                          |
 * | `container.docker.pullConfig`          | given                                 | pull secrets need a secret store                             |
 * | `container.volumes[i].secret`          | given                                 | secret volumes need a secret store                           |
 * | `container.volumes[i].external`        | given                                 | no external volume provider (DVDI, CSI)                      |
 * | `container.volumes[i].persistent`      | given                                 | persistent volumes need reservations on one agent            |
 * | `container.volumes[i].hostPath`        | relative, with a `..` segment         | a sandbox path must stay inside the task's sandbox           |
 * | `gpus`                                 | > 0                                   | agents offer no GPUs                                         |
 * | `executor`                             | not `""` / `"//cmd"`                  | no custom executors                                          |
 * | `executorResources`                    | given                                 | no executor per task                                         |
 * | `container.appc`                       | given                                 | AppC images (gone since Marathon 1.5)                        |
 * | `container.linuxInfo`                  | given                                 | Mesos containerizer settings (seccomp, IPC)                  |
 * | `container.docker.parameters[i].key`   | not in `ALLOWED_DOCKER_PARAMETERS`    | host namespaces, devices, volumes, or a setting Drover owns  |
 * | `container.docker.parameters[i].value` | `env` without `=`, `label` `drover.*` | copies the agent's variable; Drover's label namespace        |
 * | `container.docker.privileged`          | true with type MESOS                  | Marathon ignores it there                                    |
 * | `healthChecks[i].ipProtocol`           | IPv6                                  | task networking is IPv4                                      |
 * | `check`                                | given                                 | Mesos checks; use healthChecks                               |
 * | `cpus` / `mem`                         | < 0.01 / < 6                          | Docker's floors                                              |
 * | `acceptedResourceRoles`                | without `"*"`                         | no reserved resources: every offer is role `*`               |
 * | `role`                                 | a group role, not the scheduler's     | the scheduler takes offers for one role (option `role`)      |
 *
 * `ALLOWED_DOCKER_PARAMETERS`: add-host, cap-add, cap-drop, dns, dns-option, dns-search, env,
 * group-add, hostname, init, label, log-driver, log-opt, memory-swap, memory-swappiness, pids-limit,
 * read-only, shm-size, stop-signal, sysctl, tmpfs, ulimit, user, workdir.
 *
 * Accepted, for the scheduler and agent to honour (not wired yet): health and readiness checks,
 * `fetch` and relative host paths (both in the task's sandbox), `networks` (host, bridge, named
 * Docker networks), host volumes, constraints, upgrade, unreachable and kill strategies, backoff,
 * `dependencies`, `user`, `tty`, `privileged`, `forcePullImage`, `resourceLimits`,
 * `taskKillGracePeriodSeconds`, port labels and service ports (kept; none is assigned yet).
 */
import { LIMITS, utf8Bytes } from "../limits.js";
import { parseJson, type Validated, validate } from "../validation.js";
import { Issues, normalizeInput } from "./normalize.js";
import { addRefusals, type RefusalOptions } from "./refusals.js";
import { type MarathonAppInput, MarathonAppInputSchema } from "./schema.js";
import type { AppDefinition } from "./types.js";

export { MARATHON_CONSTRAINT_OPERATORS, parseConstraint } from "./constraint.js";
export { type JsonObject, toMarathonJson } from "./json.js";
export { isExtract, MARATHON_DEFAULTS } from "./normalize.js";
export {
  appIdToKey,
  canonicalId,
  checkAppId,
  checkPathId,
  keyToAppId,
  RESERVED_ID_SEGMENTS,
  taskIdPrefix,
  taskIdToAppId,
} from "./path-id.js";
export { ALLOWED_DOCKER_PARAMETERS, REFUSED_FIELDS, type RefusalOptions } from "./refusals.js";
export { type TaskRunContext, taskRunOf } from "./run.js";
export { type MarathonAppInput, MarathonAppInputSchema, READ_ONLY_FIELDS } from "./schema.js";
export {
  appResourcesOf,
  hostPortDemand,
  hostPortsByIndex,
  hostPortsWanted,
  isHostNetworking,
  javaDouble,
  portEnv,
  taskCommand,
  taskEnv,
  taskImage,
} from "./task.js";
export type * from "./types.js";

export type NormalizeOptions = RefusalOptions;

function finish(
  input: MarathonAppInput,
  refusals: boolean,
  options: NormalizeOptions,
): { def: AppDefinition; issues: Issues } {
  const issues = new Issues();
  const def = normalizeInput(input, issues, options.role ?? "*");
  if (refusals) addRefusals(def, input, issues, options);
  return { def, issues };
}

/**
 * A Marathon app definition (any JSON value) → its canonical form with Marathon's defaults, or
 * every problem found: unknown fields, wrong types, Marathon's validation rules, and Drover's
 * refusals (`not supported: …`). Never throws for bad input. Pure.
 */
export function normalizeApp(input: unknown, options: NormalizeOptions = {}): Validated<AppDefinition> {
  const parsed = validate(MarathonAppInputSchema, input);
  if (!parsed.ok) return parsed;
  const { def, issues } = finish(parsed.value, true, options);
  return issues.empty ? { ok: true, value: def } : { ok: false, issues: issues.fieldIssues() };
}

/**
 * `normalizeApp` without Drover's refusals: what Marathon itself accepts and how it reads it
 * (for tests, and to explain a refusal next to Marathon's reading).
 */
export function normalizeMarathonApp(input: unknown): Validated<AppDefinition> {
  const parsed = validate(MarathonAppInputSchema, input);
  if (!parsed.ok) return parsed;
  const { def, issues } = finish(parsed.value, false, {});
  return issues.empty ? { ok: true, value: def } : { ok: false, issues: issues.fieldIssues() };
}

/**
 * The same as `normalizeApp`, as a zod schema (for embedding in other schemas): parses to the
 * canonical `AppDefinition`, with Drover's refusals, for the scheduler's default role `*`.
 */
export const MarathonAppSchema = MarathonAppInputSchema.transform((input, ctx): AppDefinition => {
  const { def, issues } = finish(input, true, {});
  for (const issue of issues.raw)
    ctx.addIssue({ code: "custom", path: [...issue.path], message: issue.message, input: undefined });
  return def;
});

/**
 * `normalizeApp` on JSON text: at most LIMITS.definitionBytes (checked before parsing); a leading
 * byte-order mark is ignored; a syntax error is a root issue `invalid JSON: …`.
 */
export function parseMarathonAppJson(text: string, options: NormalizeOptions = {}): Validated<AppDefinition> {
  const bytes = utf8Bytes(text);
  if (bytes > LIMITS.definitionBytes)
    return {
      ok: false,
      issues: [
        {
          path: "",
          message: `the definition is ${bytes} bytes; at most ${LIMITS.definitionBytes} are allowed`,
        },
      ],
    };
  const parsed = parseJson(text.startsWith("\uFEFF") ? text.slice(1) : text);
  return parsed.ok ? normalizeApp(parsed.value, options) : parsed;
}
