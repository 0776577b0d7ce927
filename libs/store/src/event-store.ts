/**
 * The event-sourced store on etcd. `commit` appends events and updates the projections
 * they change in ONE transaction that (1) compares each aggregate's version (optimistic
 * concurrency) and (2) compares the leader key's create revision (fencing). Events and
 * projections are validated with zod on the way in and out: etcd is a boundary too.
 */
import { ConflictError, FencedError } from "@drover/common";
import type { AggregateDef, EventEnvelope } from "@drover/core";
import { CompareResult, CompareTarget, type Etcd3, type ICompare, type IRequestOp } from "etcd3";
import { z } from "zod";
import type { Leadership } from "./election.js";
import {
  LOG_PREFIX,
  logKey,
  META_PREFIX,
  parseLogKey,
  STATE_PREFIX,
  stateKey,
  statePrefix,
  VERSION_PREFIX,
  versionKey,
} from "./keys.js";

// biome-ignore lint/suspicious/noExplicitAny: heterogeneous aggregates in one transaction
type AnyDef = AggregateDef<any, any>;

export interface Change<S = unknown, E extends { type: string } = { type: string }> {
  def: AggregateDef<S, E>;
  id: string;
  /** Version the caller read; 0 for a new aggregate. */
  expectedVersion: number;
  /** The state the caller read at expectedVersion. */
  state: S | undefined;
  events: E[];
}

export interface CommitResult {
  revision: string;
  results: { id: string; version: number; state: unknown }[];
}

export interface Loaded<S> {
  state: S;
  version: number;
}

const EnvelopeSchema = z.object({
  aggregate: z.string().min(1),
  id: z.string().min(1),
  version: z.number().int().min(1),
  atMs: z.number(),
  event: z.looseObject({ type: z.string() }),
});

/** A stored event, checked (etcd is a boundary too); the error names the key. */
export function parseEnvelope(key: string, text: string): EventEnvelope {
  const checked = EnvelopeSchema.safeParse(safeJson(text));
  if (!checked.success)
    throw new Error(`invalid event at ${key}: ${checked.error.issues[0]?.message ?? "not JSON"}`);
  return checked.data;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export class EventStore {
  /** Called for each projection that fails validation on load (it is skipped). */
  onInvalid: ((key: string, problem: string) => void) | undefined;

  constructor(private readonly client: Etcd3) {}

  get etcd(): Etcd3 {
    return this.client;
  }

  /**
   * Commits the changes atomically. Throws FencedError when `leadership` no longer holds
   * (the caller must step down), ConflictError when an aggregate moved on.
   */
  async commit(
    leadership: Leadership | undefined,
    changes: Change<unknown, { type: string }>[],
    nowMs: number,
  ): Promise<CommitResult> {
    const compare: ICompare[] = [];
    const success: IRequestOp[] = [];
    const results: CommitResult["results"] = [];
    if (leadership) {
      if (!leadership.isLeader()) throw new FencedError("not leader any more");
      compare.push(leadership.fence());
    }
    for (const ch of changes) {
      const def = ch.def as AnyDef;
      if (ch.events.length === 0) continue;
      const vKey = Buffer.from(versionKey(def.name, ch.id));
      compare.push(
        ch.expectedVersion === 0
          ? { key: vKey, target: CompareTarget.Version, result: CompareResult.Equal, version: 0 }
          : {
              key: vKey,
              target: CompareTarget.Value,
              result: CompareResult.Equal,
              value: Buffer.from(String(ch.expectedVersion)),
            },
      );
      let state = ch.state;
      let version = ch.expectedVersion;
      for (const event of ch.events) {
        const parsed = def.eventSchema.parse(event);
        version += 1;
        state = def.apply(state, parsed, { id: ch.id, atMs: nowMs });
        const envelope: EventEnvelope = {
          aggregate: def.name,
          id: ch.id,
          version,
          atMs: nowMs,
          event: parsed,
        };
        success.push({
          request_put: {
            key: Buffer.from(logKey(def.name, ch.id, version)),
            value: Buffer.from(JSON.stringify(envelope)),
          },
        });
      }
      const sKey = Buffer.from(stateKey(def.name, ch.id));
      if (state === undefined) success.push({ request_delete_range: { key: sKey } });
      else success.push({ request_put: { key: sKey, value: Buffer.from(JSON.stringify(state)) } });
      success.push({ request_put: { key: vKey, value: Buffer.from(String(version)) } });
      results.push({ id: ch.id, version, state });
    }
    if (success.length === 0) return { revision: "0", results };
    const failure: IRequestOp[] = leadership ? [{ request_range: { key: Buffer.from(leadership.key) } }] : [];
    const res = await this.client.kv.txn({ compare, success, failure });
    if (!res.succeeded) {
      if (leadership) {
        const kv = res.responses[0]?.response_range?.kvs[0];
        if (!kv || kv.create_revision !== leadership.createRevision) {
          await leadership.resign().catch(() => undefined);
          throw new FencedError();
        }
      }
      throw new ConflictError(changes.map((c) => `${c.def.name}/${c.id}`).join(", "));
    }
    return { revision: res.header.revision, results };
  }

  /** Reads every projection of an aggregate type with its version. */
  async load<S, E extends { type: string }>(def: AggregateDef<S, E>): Promise<Map<string, Loaded<S>>> {
    const [states, versions] = await Promise.all([
      this.client.getAll().prefix(statePrefix(def.name)).strings(),
      this.client.getAll().prefix(`${VERSION_PREFIX}${def.name}/`).strings(),
    ]);
    const out = new Map<string, Loaded<S>>();
    for (const [key, value] of Object.entries(states)) {
      const id = key.slice(statePrefix(def.name).length);
      const version = Number(versions[versionKey(def.name, id)] ?? "0");
      const parsed = safeJson(value);
      const checked = def.stateSchema.safeParse(parsed);
      if (!checked.success) {
        // One corrupt value must not stop every replica from leading (invariant 7): skip it, loudly.
        this.onInvalid?.(`${def.name}/${id}`, checked.error.message);
        continue;
      }
      out.set(id, { state: checked.data, version });
    }
    return out;
  }

  /** One aggregate's projection and version (version > 0 with no state: it was deleted). */
  async get<S, E extends { type: string }>(
    def: AggregateDef<S, E>,
    id: string,
  ): Promise<{ state: S | undefined; version: number }> {
    const [value, version] = await Promise.all([
      this.client.get(stateKey(def.name, id)).string(),
      this.client.get(versionKey(def.name, id)).string(),
    ]);
    return {
      state: value === null ? undefined : def.stateSchema.parse(JSON.parse(value)),
      version: version === null ? 0 : Number(version),
    };
  }

  /**
   * The whole log in commit order (etcd revision, then version) and the etcd revision it was
   * read at; `atRevision` pins the read to an earlier point in time.
   */
  async readLog(
    atRevision?: string,
  ): Promise<{ revision: string; events: (EventEnvelope & { revision: string })[] }> {
    const range = this.client.getAll().prefix(LOG_PREFIX);
    const res = await (atRevision ? range.revision(atRevision) : range).exec();
    const out: (EventEnvelope & { revision: string })[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      const k = parseLogKey(key);
      if (!k) throw new Error(`malformed log key ${key}`);
      const env = parseEnvelope(key, kv.value.toString());
      out.push({ ...env, revision: kv.mod_revision });
    }
    out.sort((a, b) => {
      const d = BigInt(a.revision) - BigInt(b.revision);
      if (d !== 0n) return d < 0n ? -1 : 1;
      return a.aggregate === b.aggregate && a.id === b.id ? a.version - b.version : 0;
    });
    return { revision: res.header.revision, events: out };
  }

  /** Reads all projection keys as raw JSON, by `<aggregate>/<id>`, as of `atRevision` (default: now). */
  async readProjections(atRevision?: string): Promise<Map<string, unknown>> {
    const range = this.client.getAll().prefix(STATE_PREFIX);
    const raw = await (atRevision ? range.revision(atRevision) : range).strings();
    const out = new Map<string, unknown>();
    for (const [key, value] of Object.entries(raw))
      out.set(key.slice(STATE_PREFIX.length), JSON.parse(value));
    return out;
  }

  /** A fenced no-op transaction: resolves only if `leadership` still holds in etcd. */
  async confirmLeader(leadership: Leadership): Promise<void> {
    if (!leadership.isLeader()) throw new FencedError("not leader any more");
    const res = await this.client.kv.txn({ compare: [leadership.fence()], success: [], failure: [] });
    if (!res.succeeded) {
      await leadership.resign().catch(() => undefined);
      throw new FencedError();
    }
  }

  async getMeta(name: string): Promise<string | undefined> {
    return (await this.client.get(`${META_PREFIX}${name}`).string()) ?? undefined;
  }

  /** A fenced write of a metadata key. */
  async putMeta(leadership: Leadership | undefined, name: string, value: string): Promise<void> {
    const compare = leadership ? [leadership.fence()] : [];
    const res = await this.client.kv.txn({
      compare,
      success: [{ request_put: { key: Buffer.from(`${META_PREFIX}${name}`), value: Buffer.from(value) } }],
      failure: [],
    });
    if (!res.succeeded) {
      await leadership?.resign().catch(() => undefined);
      throw new FencedError();
    }
  }
}
