/**
 * The etcd key space of Drover (one name for one thing):
 *   /drover/log/<aggregate>/<id>/<version:010>   immutable events (the log)
 *   /drover/state/<aggregate>/<id>               projections: {"v":<version>,"s":<state>}, or the
 *                                                tombstone {"v":<version>,"d":true} of a deleted aggregate
 *                                                (its mod revision is the optimistic concurrency check)
 *   /drover/election/<service>/<lease hex>       election candidates; the lowest create revision leads
 *   /drover/checkpoint/<aggregate>/<id>          state and version after the events removed by retention
 *   /drover/meta/...                             small process metadata (e.g. the scheduler's framework id,
 *                                                its launch backoff per app)
 *   /drover/app-versions/<app key>/<version>     the definition of each earlier version of an app
 *                                                (`AppVersionEntry`), written in the transaction of
 *                                                the change that supersedes it; the current one is
 *                                                the projection
 *   /drover/version/<aggregate>/<id>             the previous format's aggregate version (next to a bare
 *                                                state): only read; the first commit of such an aggregate
 *                                                deletes it
 */
export const ROOT = "/drover";
export const LOG_PREFIX = `${ROOT}/log/`;
export const STATE_PREFIX = `${ROOT}/state/`;
export const VERSION_PREFIX = `${ROOT}/version/`;
export const ELECTION_PREFIX = `${ROOT}/election/`;
export const META_PREFIX = `${ROOT}/meta/`;
export const CHECKPOINT_PREFIX = `${ROOT}/checkpoint/`;
export const APP_VERSIONS_PREFIX = `${ROOT}/app-versions/`;

export const logKey = (aggregate: string, id: string, version: number): string =>
  `${LOG_PREFIX}${aggregate}/${id}/${String(version).padStart(10, "0")}`;
export const stateKey = (aggregate: string, id: string): string => `${STATE_PREFIX}${aggregate}/${id}`;
export const statePrefix = (aggregate: string): string => `${STATE_PREFIX}${aggregate}/`;
export const checkpointKey = (aggregate: string, id: string): string =>
  `${CHECKPOINT_PREFIX}${aggregate}/${id}`;
/** The versions of one app (`appIdToKey`), and one of them (see the file comment). */
export const appVersionsPrefix = (appKey: string): string => `${APP_VERSIONS_PREFIX}${appKey}/`;
export const appVersionKey = (appKey: string, version: string): string =>
  `${appVersionsPrefix(appKey)}${version}`;
/** The previous format's version key (see the file comment). */
export const versionKey = (aggregate: string, id: string): string => `${VERSION_PREFIX}${aggregate}/${id}`;
export const versionPrefix = (aggregate: string): string => `${VERSION_PREFIX}${aggregate}/`;

/** Parses `/drover/log/<aggregate>/<id>/<version>`; ids never contain "/". */
export function parseLogKey(key: string): { aggregate: string; id: string; version: number } | undefined {
  if (!key.startsWith(LOG_PREFIX)) return undefined;
  const parts = key.slice(LOG_PREFIX.length).split("/");
  if (parts.length !== 3) return undefined;
  const [aggregate, id, v] = parts as [string, string, string];
  const version = Number(v);
  if (!Number.isInteger(version) || version < 1) return undefined;
  return { aggregate, id, version };
}
