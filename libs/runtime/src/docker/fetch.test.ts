/** The fetcher against a real HTTP server (node:http), the real file system and the system's tar/unzip. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import type { FetchUri } from "@drover/core";
import { FetchError, Fetcher } from "./fetch.js";

const run = promisify(execFile);
let root: string;
let server: Server;
let base: string;
const files = new Map<string, Buffer>();
const requests = new Map<string, number>();

const uri = (over: Partial<FetchUri> & { uri: string }): FetchUri => ({
  extract: false,
  executable: false,
  cache: false,
  ...over,
});

before(async () => {
  root = await mkdtemp(join(tmpdir(), "drover-fetch-test-"));
  const src = join(root, "src");
  await mkdir(join(src, "pkg", "bin"), { recursive: true });
  await writeFile(join(src, "pkg", "bin", "run.sh"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
  await writeFile(join(src, "pkg", "README"), "readme\n");
  await run("tar", ["-czf", join(root, "pkg.tar.gz"), "-C", src, "pkg"]);
  await run("zip", ["-qr", join(root, "pkg.zip"), "pkg"], { cwd: src });
  files.set("/pkg.tar.gz", await readFile(join(root, "pkg.tar.gz")));
  files.set("/pkg.zip", await readFile(join(root, "pkg.zip")));
  files.set("/hello.txt", Buffer.from("hello\n"));
  files.set("/data.json.gz", gzipSync(Buffer.from('{"a":1}')));
  files.set("/big.bin", Buffer.alloc(64 * 1024, 7));
  files.set("/dir/name%20with%20space.txt", Buffer.from("spaced\n"));
  server = createServer((req, res) => {
    const path = req.url ?? "/";
    requests.set(path, (requests.get(path) ?? 0) + 1);
    if (path === "/slow") return; // never answers
    const body = files.get(path);
    if (!body) {
      res.writeHead(404).end("no");
      return;
    }
    res.writeHead(200, { "content-length": body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(root, { recursive: true, force: true });
});

let seq = 0;
async function sandbox(): Promise<string> {
  const dir = join(root, "sandboxes", `s${++seq}`);
  await mkdir(dir, { recursive: true });
  return dir;
}
const fetcher = (over: Partial<ConstructorParameters<typeof Fetcher>[0]> = {}) =>
  new Fetcher({ cacheDir: join(root, "cache"), timeoutMs: 5_000, ...over });

async function fails(p: Promise<unknown>, message: string | RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof FetchError, String(err));
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

describe("Fetcher", () => {
  test("a URI lands in the sandbox under its name or outputFile; executable is 0755", async () => {
    const dir = await sandbox();
    await fetcher().fetchAll(
      [
        uri({ uri: `${base}/hello.txt` }),
        uri({ uri: `${base}/hello.txt`, outputFile: "conf/greeting", executable: true }),
        uri({ uri: `${base}/dir/name%20with%20space.txt` }),
      ],
      dir,
    );
    assert.equal(await readFile(join(dir, "hello.txt"), "utf8"), "hello\n");
    assert.equal((await stat(join(dir, "hello.txt"))).mode & 0o777, 0o644);
    assert.equal(await readFile(join(dir, "conf", "greeting"), "utf8"), "hello\n");
    assert.equal((await stat(join(dir, "conf", "greeting"))).mode & 0o777, 0o755);
    assert.equal(await readFile(join(dir, "name with space.txt"), "utf8"), "spaced\n");
    assert.deepEqual((await readdir(dir)).sort(), ["conf", "hello.txt", "name with space.txt"]);
  });

  test("extract unpacks .tar.gz, .zip and .gz into the sandbox and keeps the archive", async () => {
    const dir = await sandbox();
    await fetcher().fetchAll([uri({ uri: `${base}/pkg.tar.gz`, extract: true })], dir);
    assert.equal(await readFile(join(dir, "pkg", "README"), "utf8"), "readme\n");
    assert.equal((await stat(join(dir, "pkg", "bin", "run.sh"))).mode & 0o777, 0o755);
    assert.ok((await stat(join(dir, "pkg.tar.gz"))).isFile());

    const z = await sandbox();
    await fetcher().fetchAll(
      [uri({ uri: `${base}/pkg.zip`, extract: true }), uri({ uri: `${base}/data.json.gz`, extract: true })],
      z,
    );
    assert.equal(await readFile(join(z, "pkg", "README"), "utf8"), "readme\n");
    assert.equal(await readFile(join(z, "data.json"), "utf8"), '{"a":1}');
    // extract on a file that is no archive leaves it as it is.
    const plain = await sandbox();
    await fetcher().fetchAll([uri({ uri: `${base}/hello.txt`, extract: true })], plain);
    assert.deepEqual(await readdir(plain), ["hello.txt"]);
  });

  test("a cached URI is downloaded once, however many sandboxes ask, at once or later", async () => {
    const f = fetcher({ cacheDir: join(root, "cache-once") });
    const u = uri({ uri: `${base}/pkg.tar.gz`, cache: true, extract: true });
    const before = requests.get("/pkg.tar.gz") ?? 0;
    const [a, b, c] = [await sandbox(), await sandbox(), await sandbox()];
    await Promise.all([f.fetchAll([u], a), f.fetchAll([u], b)]);
    await f.fetchAll([u], c);
    // Another fetcher on the same cache dir (a restarted agent) uses it too.
    await fetcher({ cacheDir: join(root, "cache-once") }).fetchAll([u], await sandbox());
    assert.equal((requests.get("/pkg.tar.gz") ?? 0) - before, 1);
    for (const d of [a, b, c]) assert.equal(await readFile(join(d, "pkg", "README"), "utf8"), "readme\n");
  });

  test("the cache keeps within its size, least recently used first", async () => {
    const cacheDir = join(root, "cache-small");
    const f = fetcher({ cacheDir, cacheMaxBytes: 64 * 1024 + 3 });
    await f.fetchAll([uri({ uri: `${base}/hello.txt`, cache: true })], await sandbox());
    await new Promise((r) => setTimeout(r, 20));
    await f.fetchAll([uri({ uri: `${base}/big.bin`, cache: true })], await sandbox());
    assert.equal((await readdir(cacheDir)).length, 1, "hello.txt was evicted for big.bin");
  });

  test("failures name the URI and the reason; nothing half-written is left", async () => {
    const dir = await sandbox();
    const f = fetcher();
    await fails(
      f.fetchAll([uri({ uri: `${base}/missing.tgz` })], dir),
      `fetch ${base}/missing.tgz: HTTP 404 Not Found`,
    );
    await fails(
      fetcher({ maxBytes: 1000 }).fetchAll([uri({ uri: `${base}/big.bin` })], dir),
      `fetch ${base}/big.bin: 65536 bytes, more than the limit of 1000`,
    );
    await fails(
      fetcher({ timeoutMs: 300 }).fetchAll([uri({ uri: `${base}/slow` })], dir),
      `fetch ${base}/slow: timed out after 300 ms`,
    );
    await fails(f.fetchAll([uri({ uri: "ftp://example.org/x" })], dir), /scheme ftp is not supported/);
    await fails(f.fetchAll([uri({ uri: "not a uri" })], dir), /not a URI/);
    await fails(f.fetchAll([uri({ uri: `${base}/` })], dir), /names no file; give the fetch an outputFile/);
    await fails(
      f.fetchAll([uri({ uri: `${base}/hello.txt`, outputFile: "../escape" })], dir),
      /outputFile \.\.\/escape leaves the sandbox/,
    );
    await fails(
      f.fetchAll([uri({ uri: `${base}/hello.txt`, outputFile: "/etc/x" })], dir),
      /must be relative/,
    );
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await fails(f.fetchAll([uri({ uri: `http://127.0.0.1:${closedPort}/x` })], dir), /ECONNREFUSED/);
    await fails(f.fetchAll([uri({ uri: join(root, "nope") })], dir), /cannot read .*ENOENT/);
    await fails(f.fetchAll([uri({ uri: root })], dir), /is not a regular file/);
    await writeFile(join(root, "broken.tar.gz"), "not a tarball");
    await fails(
      f.fetchAll([uri({ uri: `file://${join(root, "broken.tar.gz")}`, extract: true })], dir),
      /extract broken\.tar\.gz: /,
    );
    assert.deepEqual(
      await readdir(dir),
      ["broken.tar.gz"],
      "only the fetched (bad) archive, no temporary file",
    );
  });

  test("an archive that expands past the size limit, or links outside the sandbox, is not unpacked", async () => {
    const src = join(root, "evil");
    await mkdir(join(src, "e"), { recursive: true });
    await writeFile(join(src, "e", "zeros"), Buffer.alloc(200 * 1024));
    await run("tar", ["-czf", join(root, "zeros.tgz"), "-C", src, "e"]);
    await run("ln", ["-s", "/etc", join(src, "e", "etc")]);
    await run("tar", ["-czf", join(root, "link.tgz"), "-C", src, "e"]);
    await run("zip", ["-qry", join(root, "link.zip"), "e"], { cwd: src });
    // The zeros compress to far below the limit; unpacked they exceed it.
    const small = fetcher({ maxBytes: 100 * 1024 });
    await fails(
      small.fetchAll([uri({ uri: join(root, "zeros.tgz"), extract: true })], await sandbox()),
      /zeros\.tgz: it expands to 204800 bytes, more than the limit of 102400/,
    );
    const dir = await sandbox();
    await fails(
      fetcher().fetchAll([uri({ uri: join(root, "link.tgz"), extract: true })], dir),
      /the link e\/etc -> \/etc points outside the sandbox/,
    );
    await assert.rejects(stat(join(dir, "e")), "nothing unpacked");
    await fails(
      fetcher().fetchAll([uri({ uri: join(root, "link.zip"), extract: true })], await sandbox()),
      /link\.zip: the link .*etc points outside the sandbox/,
    );
  });

  test("nothing is written through a symlink an earlier URI left in the sandbox", async () => {
    const dir = await sandbox();
    const outside = join(root, "outside");
    await mkdir(outside, { recursive: true });
    await run("ln", ["-s", outside, join(dir, "conf")]);
    await fails(
      fetcher().fetchAll([uri({ uri: `${base}/hello.txt`, outputFile: "conf/x" })], dir),
      /conf in the sandbox is a symlink/,
    );
    assert.deepEqual(await readdir(outside), []);
  });

  test("file URIs and absolute paths are copied", async () => {
    const dir = await sandbox();
    await fetcher().fetchAll(
      [
        uri({ uri: `file://${join(root, "pkg.tar.gz")}`, extract: true }),
        uri({ uri: join(root, "pkg.zip") }),
      ],
      dir,
    );
    assert.equal(await readFile(join(dir, "pkg", "README"), "utf8"), "readme\n");
    assert.ok((await stat(join(dir, "pkg.zip"))).isFile());
  });

  test("an abort (the task is killed) stops a download at once", async () => {
    const ac = new AbortController();
    const dir = await sandbox();
    const p = fetcher({ timeoutMs: 60_000 }).fetchAll([uri({ uri: `${base}/slow` })], dir, ac.signal);
    setTimeout(() => ac.abort(), 50);
    const t0 = Date.now();
    await fails(p, `fetch ${base}/slow: aborted (the task was killed)`);
    assert.ok(Date.now() - t0 < 2000);
  });
});
