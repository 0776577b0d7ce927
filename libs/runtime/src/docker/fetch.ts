/**
 * Marathon's `fetch` (Mesos' fetcher): each URI is downloaded into the task's sandbox before its
 * container starts. http, https and file URIs (or an absolute path) are fetched with a timeout and a
 * size cap; the file is named `outputFile` (Marathon's destPath, relative to the sandbox) or after
 * the URI's last path segment; `executable` makes it 0755; `extract` unpacks .tar, .tar.gz/.tgz,
 * .tar.bz2/.tbz2, .tar.xz/.txz (the system's `tar`), .zip (`unzip`) and .gz into the sandbox, and
 * keeps the archive; `cache` keeps one copy per URI in the agent's cache (least recently used entries
 * go first above the cache's size) and copies it from there, so a second task downloads nothing.
 * Every failure is a FetchError, `fetch <uri>: <reason>`.
 */
import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, copyFile, lstat, mkdir, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, posix } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createGunzip } from "node:zlib";
import type { FetchUri } from "@drover/core";

export interface FetcherOptions {
  /** Where cached downloads are kept (created on first use). */
  cacheDir: string;
  /** Upper bound of one URI's download, and of one extraction (default 300 000 ms). */
  timeoutMs?: number;
  /** The largest file fetched, and the largest .gz unpacked (default 1 GiB). */
  maxBytes?: number;
  /** The cache keeps at most this many bytes; the least recently used entries go first (default 2 GiB). */
  cacheMaxBytes?: number;
}

/** A fetch that failed: `fetch <uri>: <reason>`. */
export class FetchError extends Error {
  constructor(
    readonly uri: string,
    readonly reason: string,
  ) {
    super(`fetch ${uri}: ${reason}`);
    this.name = "FetchError";
  }
}

/** A reason already worded for the user. */
class Reason extends Error {}

type Source = { kind: "http"; url: URL } | { kind: "file"; path: string };

const TAR_SUFFIXES = [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz"];
const run = promisify(execFile);

export class Fetcher {
  readonly cacheDir: string;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly cacheMaxBytes: number;
  /** Cache downloads in flight by cache key: a second task waits for the first one's download. */
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(opts: FetcherOptions) {
    this.cacheDir = opts.cacheDir;
    this.timeoutMs = opts.timeoutMs ?? 300_000;
    this.maxBytes = opts.maxBytes ?? 1024 ** 3;
    this.cacheMaxBytes = opts.cacheMaxBytes ?? 2 * 1024 ** 3;
  }

  /** Fetches the URIs into `sandbox`, in order; the first failure is thrown as a FetchError. */
  async fetchAll(uris: readonly FetchUri[], sandbox: string, signal?: AbortSignal): Promise<void> {
    for (const u of uris) {
      try {
        await this.fetchOne(u, sandbox, signal);
      } catch (err) {
        throw new FetchError(u.uri, this.reasonOf(err, signal));
      }
    }
  }

  private async fetchOne(u: FetchUri, sandbox: string, signal: AbortSignal | undefined): Promise<void> {
    const source = parseSource(u.uri);
    const dest = destinationOf(sandbox, u.outputFile ?? defaultName(source));
    // An earlier archive may have left symlinks: nothing is written through one.
    await refuseSymlinks(sandbox, dirname(dest));
    await mkdir(dirname(dest), { recursive: true });
    await rm(dest, { force: true });
    if (u.cache) {
      const cached = await abortable(this.cached(u.uri, source), signal);
      await copyFile(cached, dest);
    } else {
      await this.download(source, dest, signal);
    }
    if (u.executable) await chmod(dest, 0o755);
    if (u.extract) await this.extract(dest, sandbox, signal);
  }

  /** The cache's copy of `uri`, downloaded first if absent (once, however many tasks ask at once). */
  private async cached(uri: string, source: Source): Promise<string> {
    const key = createHash("sha256").update(uri).digest("hex");
    const path = join(this.cacheDir, key);
    try {
      await stat(path);
      const now = new Date();
      await utimes(path, now, now); // recently used: evicted last
      return path;
    } catch {
      // not cached yet
    }
    let p = this.inflight.get(key);
    if (p === undefined) {
      p = (async () => {
        await mkdir(this.cacheDir, { recursive: true });
        // Not tied to one task's kill: another task may be waiting for the same download.
        await this.download(source, path, undefined);
        await this.evict(path);
        return path;
      })().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  /** Downloads to a temporary name next to `dest`, then renames: `dest` is complete or absent. */
  private async download(source: Source, dest: string, signal: AbortSignal | undefined): Promise<void> {
    const tmp = `${dest}.fetching-${randomUUID().slice(0, 8)}`;
    try {
      if (source.kind === "file") await this.copyLocal(source.path, tmp);
      else await this.downloadHttp(source.url, tmp, signal);
      await rename(tmp, dest);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private async copyLocal(path: string, tmp: string): Promise<void> {
    let size: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new Reason(`${path} is not a regular file`);
      size = st.size;
    } catch (err) {
      if (err instanceof Reason) throw err;
      throw new Reason(`cannot read ${path}: ${codeOf(err) ?? String(err)}`);
    }
    if (size > this.maxBytes) throw new Reason(`${size} bytes, more than the limit of ${this.maxBytes}`);
    await copyFile(path, tmp);
  }

  private async downloadHttp(url: URL, tmp: string, signal: AbortSignal | undefined): Promise<void> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const res = await fetch(url, { signal: both, redirect: "follow" });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new Reason(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`);
    }
    const length = Number(res.headers.get("content-length") ?? Number.NaN);
    if (length > this.maxBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw new Reason(`${length} bytes, more than the limit of ${this.maxBytes}`);
    }
    const out = createWriteStream(tmp, { mode: 0o644 });
    if (res.body === null) {
      out.end();
      return;
    }
    await pipeline(Readable.fromWeb(res.body as WebReadableStream), sizeLimit(this.maxBytes), out, {
      signal: both,
    });
  }

  /** Unpacks an archive into `dir` by its name; a file that is no archive is left as it is (Mesos). */
  private async extract(file: string, dir: string, signal: AbortSignal | undefined): Promise<void> {
    const name = basename(file);
    const lower = name.toLowerCase();
    if (TAR_SUFFIXES.some((s) => lower.endsWith(s))) {
      await this.checkArchive(
        parseTarListing(await this.tool("tar", ["-t", "-v", "-f", file], name, signal)),
        name,
      );
      await this.tool(
        "tar",
        ["-x", "-f", file, "-C", dir, "--no-same-owner", "--no-overwrite-dir"],
        name,
        signal,
      );
    } else if (lower.endsWith(".zip")) {
      await this.checkArchive(
        parseZipListing(await this.tool("unzip", ["-Z", "-l", file], name, signal)),
        name,
      );
      await this.tool("unzip", ["-o", "-q", file, "-d", dir], name, signal);
    } else if (lower.endsWith(".gz")) {
      const out = join(dirname(file), name.slice(0, -3));
      if (out === file || basename(out) === "") return;
      try {
        await pipeline(
          createReadStream(file),
          createGunzip(),
          sizeLimit(this.maxBytes),
          createWriteStream(out),
        );
      } catch (err) {
        await rm(out, { force: true });
        if (err instanceof Reason) throw err;
        throw new Reason(`extract ${name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /**
   * Before an archive is unpacked: what it expands to stays within the fetch size limit, and no
   * link in it points outside the sandbox (an absolute target, or one with a '..' segment).
   */
  private async checkArchive(listing: ArchiveListing, name: string): Promise<void> {
    if (listing.bytes > this.maxBytes)
      throw new Reason(
        `extract ${name}: it expands to ${listing.bytes} bytes, more than the limit of ${this.maxBytes}`,
      );
    if (listing.unsafeLink !== undefined)
      throw new Reason(`extract ${name}: the link ${listing.unsafeLink} points outside the sandbox`);
  }

  private async tool(
    cmd: string,
    args: string[],
    name: string,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    try {
      const { stdout } = await run(cmd, args, {
        timeout: this.timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
        ...(signal ? { signal } : {}),
      });
      return String(stdout);
    } catch (err) {
      if (codeOf(err) === "ENOENT")
        throw new Reason(`cannot extract ${name}: ${cmd} is not installed on this agent`);
      if (signal?.aborted) throw err;
      const stderr = (err as { stderr?: unknown }).stderr;
      const detail = typeof stderr === "string" && stderr.trim() !== "" ? stderr.trim() : String(err);
      throw new Reason(`extract ${name}: ${detail.split("\n").slice(0, 3).join("; ")}`);
    }
  }

  /** Keeps the cache within cacheMaxBytes, removing the least recently used entries (never `keep`). */
  private async evict(keep: string): Promise<void> {
    const entries: { path: string; size: number; mtimeMs: number }[] = [];
    for (const name of await readdir(this.cacheDir)) {
      if (name.includes(".fetching-")) continue;
      const path = join(this.cacheDir, name);
      try {
        const st = await stat(path);
        if (st.isFile()) entries.push({ path, size: st.size, mtimeMs: st.mtimeMs });
      } catch {
        // removed meanwhile
      }
    }
    let total = entries.reduce((n, e) => n + e.size, 0);
    entries.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const e of entries) {
      if (total <= this.cacheMaxBytes) break;
      if (e.path === keep) continue;
      await rm(e.path, { force: true });
      total -= e.size;
    }
  }

  private reasonOf(err: unknown, signal: AbortSignal | undefined): string {
    if (err instanceof Reason) return err.message;
    if (signal?.aborted) return "aborted (the task was killed)";
    const name = err instanceof Error ? err.name : "";
    if (name === "TimeoutError" || name === "AbortError") return `timed out after ${this.timeoutMs} ms`;
    // Node's fetch: TypeError("fetch failed") with the socket's error as cause.
    const cause = err instanceof Error ? err.cause : undefined;
    if (cause instanceof Error) return codeOf(cause) ?? cause.message;
    return err instanceof Error ? err.message : String(err);
  }
}

/** http(s) and file URIs, or an absolute path on the agent; other schemes are refused. */
export function parseSource(uri: string): Source {
  if (uri.startsWith("/")) return { kind: "file", path: uri };
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new Reason("not a URI (http://, https://, file:// or an absolute path)");
  }
  if (url.protocol === "http:" || url.protocol === "https:") return { kind: "http", url };
  if (url.protocol === "file:") return { kind: "file", path: fileURLToPath(url) };
  throw new Reason(`scheme ${url.protocol.replace(/:$/, "")} is not supported (http, https, file)`);
}

/** The file name of a URI: its last path segment. */
export function defaultName(source: Source): string {
  const raw = source.kind === "file" ? basename(source.path) : (source.url.pathname.split("/").pop() ?? "");
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    name = raw;
  }
  if (name === "" || name === "." || name === "..")
    throw new Reason("the URI names no file; give the fetch an outputFile (destPath)");
  return name;
}

/** `name` inside the sandbox; an absolute name, or one that leaves the sandbox, is refused. */
export function destinationOf(sandbox: string, name: string): string {
  if (isAbsolute(name)) throw new Reason(`outputFile ${name} must be relative to the sandbox`);
  const dest = join(sandbox, posix.normalize(name));
  if (!dest.startsWith(`${sandbox}/`)) throw new Reason(`outputFile ${name} leaves the sandbox`);
  return dest;
}

function sizeLimit(max: number): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (n > max) cb(new Reason(`more than the limit of ${max} bytes`));
      else cb(null, chunk);
    },
  });
}

function codeOf(err: unknown): string | undefined {
  const code = typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

/** `p`, or a rejection as soon as `signal` aborts (p itself goes on: another task may wait for it). */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/** What an archive holds, as far as unpacking it safely needs to know. */
export interface ArchiveListing {
  /** The sum of its files' sizes, unpacked. */
  bytes: number;
  /** The first link whose target is absolute or climbs with '..' ("name -> target"), if any. */
  unsafeLink?: string | undefined;
}

function unsafeTarget(target: string): boolean {
  return target.startsWith("/") || target.split("/").includes("..");
}

/**
 * `tar -tvf` (GNU tar): `-rw-r--r-- user/group 1234 2026-11-29 20:00 name`, symlinks as
 * `lrwxrwxrwx ... name -> target`, hard links as `hrw-r--r-- ... name link to target`.
 */
export function parseTarListing(text: string): ArchiveListing {
  let bytes = 0;
  let unsafeLink: string | undefined;
  for (const line of text.split("\n")) {
    const m = /^(\S)\S*\s+\S+\s+(\d+)\s+\S+\s+\S+\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, type, size, rest = ""] = m;
    bytes += Number(size);
    const link = type === "l" ? rest.split(" -> ") : type === "h" ? rest.split(" link to ") : undefined;
    const target = link?.[1];
    if (unsafeLink === undefined && target !== undefined && unsafeTarget(target)) unsafeLink = rest;
  }
  return { bytes, unsafeLink };
}

/** `unzip -Z -l` (zipinfo): `-rw-r--r--  3.0 unx  1234 tx  567 defN 26-Nov-29 20:00 name`; symlinks start with `l`. */
export function parseZipListing(text: string): ArchiveListing {
  let bytes = 0;
  let unsafeLink: string | undefined;
  for (const line of text.split("\n")) {
    const m = /^(\S)\S{9}\s+\S+\s+\S+\s+(\d+)\s/.exec(line);
    if (!m) continue;
    bytes += Number(m[2]);
    // A zip stores a symlink's target as its content, which zipinfo does not show: refuse them all.
    if (m[1] === "l" && unsafeLink === undefined)
      unsafeLink = line.trim().split(/\s+/).slice(9).join(" ") || line.trim();
  }
  return { bytes, unsafeLink };
}

/** Refuses when a path component from `sandbox` (exclusive) down to `dir` exists and is a symlink. */
async function refuseSymlinks(sandbox: string, dir: string): Promise<void> {
  const rel = dir
    .slice(sandbox.length)
    .split("/")
    .filter((s) => s !== "");
  let at = sandbox;
  for (const part of rel) {
    at = join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (st === undefined) return;
    if (st.isSymbolicLink()) throw new Reason(`${at.slice(sandbox.length + 1)} in the sandbox is a symlink`);
  }
}
