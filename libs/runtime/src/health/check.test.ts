import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { healthCheckSpec, readinessCheckSpec } from "@drover/core";
import { probeReadiness, runCheck } from "./check.js";
import { LocalCommandRunner } from "./command.js";
import {
  closedPort,
  httpServer,
  httpsServer,
  rawServer,
  selfSignedCertificate,
  type TestServer,
  until,
} from "./test-support.js";

const HOST = "127.0.0.1";

/** Whether a process exists and is not a zombie (a killed grandchild may wait for a reaper). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

describe("runCheck: HTTP", () => {
  let server: TestServer;
  before(async () => {
    server = await httpServer();
  });
  after(async () => {
    await server.close();
  });
  const at = () => ({ host: HOST, port: server.port });

  it("200–399 are healthy, others unhealthy with the status as cause", async () => {
    assert.deepEqual(await runCheck(healthCheckSpec({ path: "/ok" }), at(), 2000), { kind: "healthy" });
    assert.deepEqual(await runCheck(healthCheckSpec({ path: "/redirect" }), at(), 2000), { kind: "healthy" });
    assert.deepEqual(await runCheck(healthCheckSpec({ path: "/fail" }), at(), 2000), {
      kind: "unhealthy",
      cause: "500 Internal Server Error",
    });
    assert.deepEqual(await runCheck(healthCheckSpec({ path: "/nothing" }), at(), 2000), {
      kind: "unhealthy",
      cause: "404 Not Found",
    });
  });

  it("adds the leading slash to the path, as Marathon", async () => {
    assert.deepEqual(await runCheck(healthCheckSpec({ path: "ok" }), at(), 2000), { kind: "healthy" });
    assert.equal(server.hits.get("/ok") !== undefined, true);
  });

  it("a server that does not answer is a failure after the timeout, and the connection is closed", async () => {
    const started = Date.now();
    const r = await runCheck(healthCheckSpec({ path: "/hang" }), at(), 300);
    const took = Date.now() - started;
    assert.deepEqual(r, { kind: "unhealthy", cause: "no answer within 300 ms" });
    assert.ok(took >= 290 && took < 3000, `took ${took} ms`);
    await until("the server to see the connection closed", () => server.open() === 0);
  });

  it("1xx: ignored with ignoreHttp1xx, else unhealthy (Marathon-level takes the first answer)", async () => {
    assert.deepEqual(
      await runCheck(healthCheckSpec({ path: "/processing", ignoreHttp1xx: true }), at(), 2000),
      {
        kind: "ignored",
        cause: "102 Processing",
      },
    );
    assert.deepEqual(await runCheck(healthCheckSpec({ path: "/processing" }), at(), 2000), {
      kind: "unhealthy",
      cause: "102 Processing",
    });
    await until("the connections to close", () => server.open() === 0);
  });

  it("101 Switching Protocols and a bare 100 Continue are 1xx answers too", async () => {
    const upgrade = await rawServer(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
    );
    const cont = await rawServer("HTTP/1.1 100 Continue\r\n\r\n");
    try {
      const up = { host: HOST, port: upgrade.port };
      assert.deepEqual(await runCheck(healthCheckSpec({ ignoreHttp1xx: true }), up, 2000), {
        kind: "ignored",
        cause: "101 Switching Protocols",
      });
      assert.deepEqual(await runCheck(healthCheckSpec(), up, 2000), {
        kind: "unhealthy",
        cause: "101 Switching Protocols",
      });
      assert.deepEqual(
        await runCheck(healthCheckSpec({ ignoreHttp1xx: true }), { host: HOST, port: cont.port }, 2000),
        {
          kind: "ignored",
          cause: "100 Continue",
        },
      );
    } finally {
      await upgrade.close();
      await cont.close();
    }
  });

  it("MESOS_HTTP waits past informational answers for the final one (as curl), and ignores ignoreHttp1xx", async () => {
    assert.deepEqual(
      await runCheck(healthCheckSpec({ protocol: "MESOS_HTTP", path: "/processing-then-ok" }), at(), 2000),
      { kind: "healthy" },
    );
    assert.deepEqual(
      await runCheck(
        healthCheckSpec({ protocol: "MESOS_HTTP", path: "/processing", ignoreHttp1xx: true }),
        at(),
        300,
      ),
      { kind: "unhealthy", cause: "no answer within 300 ms" },
    );
  });

  it("a closed port, or no port at all, is a failure", async () => {
    const port = await closedPort();
    const r = await runCheck(healthCheckSpec(), { host: HOST, port }, 2000);
    assert.equal(r.kind, "unhealthy");
    assert.match(r.kind === "unhealthy" ? r.cause : "", /ECONNREFUSED/);
    assert.deepEqual(await runCheck(healthCheckSpec(), undefined, 2000), {
      kind: "unhealthy",
      cause: "unable to get the task's effective port",
    });
  });

  it("an abort ends a check in flight at once", async () => {
    const abort = new AbortController();
    const started = Date.now();
    const seen = server.hits.get("/hang") ?? 0;
    const pending = runCheck(healthCheckSpec({ path: "/hang" }), at(), 30_000, { signal: abort.signal });
    await until("the request to arrive", () => (server.hits.get("/hang") ?? 0) > seen);
    abort.abort();
    assert.deepEqual(await pending, { kind: "unhealthy", cause: "aborted" });
    assert.ok(Date.now() - started < 5000);
    await until("the server to see the connection closed", () => server.open() === 0);
  });
});

describe("runCheck: HTTPS (self-signed certificate made with node:crypto)", () => {
  let server: TestServer;
  before(async () => {
    server = await httpsServer();
  });
  after(async () => {
    await server.close();
  });
  const at = () => ({ host: HOST, port: server.port });

  it("the certificate is a valid self-signed X.509 certificate", () => {
    const { cert } = selfSignedCertificate();
    const x = new X509Certificate(cert);
    assert.equal(x.subject, "CN=127.0.0.1");
    assert.equal(x.issuer, "CN=127.0.0.1");
    assert.ok(x.checkIP("127.0.0.1"));
    assert.ok(x.verify(x.publicKey));
    // Random serials and signatures: every one must encode (a serial once began with 0x00: illegal padding).
    for (let i = 0; i < 300; i++) {
      const c = new X509Certificate(selfSignedCertificate().cert);
      assert.ok(c.verify(c.publicKey));
    }
  });

  it("does not verify the certificate (as Marathon and curl -k)", async () => {
    assert.deepEqual(await runCheck(healthCheckSpec({ protocol: "HTTPS", path: "/ok" }), at(), 2000), {
      kind: "healthy",
    });
    assert.deepEqual(await runCheck(healthCheckSpec({ protocol: "MESOS_HTTPS", path: "/ok" }), at(), 2000), {
      kind: "healthy",
    });
    assert.deepEqual(await runCheck(healthCheckSpec({ protocol: "HTTPS", path: "/fail" }), at(), 2000), {
      kind: "unhealthy",
      cause: "500 Internal Server Error",
    });
    assert.deepEqual(
      await runCheck(
        healthCheckSpec({ protocol: "HTTPS", path: "/processing", ignoreHttp1xx: true }),
        at(),
        2000,
      ),
      { kind: "ignored", cause: "102 Processing" },
    );
  });

  it("HTTPS against a plain HTTP port is a failure", async () => {
    const plain = await httpServer();
    try {
      const r = await runCheck(
        healthCheckSpec({ protocol: "HTTPS", path: "/ok" }),
        { host: HOST, port: plain.port },
        2000,
      );
      assert.equal(r.kind, "unhealthy");
    } finally {
      await plain.close();
    }
  });
});

describe("runCheck: TCP", () => {
  it("healthy when a connection is made, unhealthy on a closed port", async () => {
    const server = await httpServer();
    try {
      for (const protocol of ["TCP", "MESOS_TCP"] as const) {
        assert.deepEqual(
          await runCheck(healthCheckSpec({ protocol }), { host: HOST, port: server.port }, 2000),
          {
            kind: "healthy",
          },
        );
      }
      await until("the check's connection to close", () => server.open() === 0);
    } finally {
      await server.close();
    }
    const port = await closedPort();
    const r = await runCheck(healthCheckSpec({ protocol: "TCP" }), { host: HOST, port }, 2000);
    assert.equal(r.kind, "unhealthy");
    assert.match(r.kind === "unhealthy" ? r.cause : "", /ECONNREFUSED/);
  });
});

describe("runCheck: COMMAND (LocalCommandRunner)", () => {
  const runner = new LocalCommandRunner({ env: { PORT0: "31000" } });
  const cmd = (value: string) => healthCheckSpec({ protocol: "COMMAND", command: { value } });

  it("exit 0 is healthy, anything else unhealthy with the status and the last line of output", async () => {
    assert.deepEqual(await runCheck(cmd("true"), undefined, 5000, { commandRunner: runner }), {
      kind: "healthy",
    });
    assert.deepEqual(await runCheck(cmd("false"), undefined, 5000, { commandRunner: runner }), {
      kind: "unhealthy",
      cause: "command exited with status 1",
    });
    assert.deepEqual(
      await runCheck(cmd("echo starting; echo 'not ready' >&2; exit 3"), undefined, 5000, {
        commandRunner: runner,
      }),
      { kind: "unhealthy", cause: "command exited with status 3: not ready" },
    );
  });

  it("runs through /bin/sh -c with the task's environment", async () => {
    assert.deepEqual(
      await runCheck(cmd('test "$PORT0" = 31000 && [ -n "$PATH" ]'), undefined, 5000, {
        commandRunner: runner,
      }),
      {
        kind: "healthy",
      },
    );
  });

  it("a command past its timeout is killed with everything it started", async () => {
    const dir = mkdtempSync(join(tmpdir(), "drover-health-"));
    try {
      const pidFile = join(dir, "pid");
      const started = Date.now();
      const r = await runCheck(cmd(`sleep 5 & echo $! > ${pidFile}; wait`), undefined, 1000, {
        commandRunner: runner,
      });
      assert.deepEqual(r, { kind: "unhealthy", cause: "command timed out after 1000 ms" });
      assert.ok(Date.now() - started < 4000, "returned well before sleep 5 would end");
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      assert.ok(pid > 0);
      await until("the command's sleep to be gone", () => !running(pid), 2000);
      assert.deepEqual(await runCheck(cmd("sleep 5"), undefined, 200, { commandRunner: runner }), {
        kind: "unhealthy",
        cause: "command timed out after 200 ms",
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an abort kills the command", async () => {
    const abort = new AbortController();
    const pending = runner.run("sleep 5", { timeoutMs: 30_000, signal: abort.signal });
    setTimeout(() => abort.abort(), 50);
    assert.deepEqual(await pending, { kind: "aborted" });
  });

  it("no command, no runner, or no shell: a failure, never a throw", async () => {
    assert.deepEqual(
      await runCheck(healthCheckSpec({ protocol: "COMMAND" }), undefined, 1000, { commandRunner: runner }),
      {
        kind: "unhealthy",
        cause: "COMMAND health check without a command",
      },
    );
    assert.deepEqual(await runCheck(cmd("true"), undefined, 1000), {
      kind: "unhealthy",
      cause: "no command runner for this task",
    });
    const noShell = new LocalCommandRunner({ shell: "/nonexistent/sh" });
    const r = await runCheck(cmd("true"), undefined, 1000, { commandRunner: noShell });
    assert.equal(r.kind, "unhealthy");
    assert.match(r.kind === "unhealthy" ? r.cause : "", /^command could not run: .*ENOENT/);
  });
});

describe("probeReadiness", () => {
  let server: TestServer;
  before(async () => {
    server = await httpServer();
  });
  after(async () => {
    await server.close();
  });
  const at = () => ({ host: HOST, port: server.port });

  it("returns the status, the media type and the body", async () => {
    assert.deepEqual(await probeReadiness(readinessCheckSpec({ path: "/ready" }), at(), 2000), {
      kind: "response",
      response: { status: 200, contentType: "application/json", body: '{"ready":true}' },
    });
    assert.deepEqual(await probeReadiness(readinessCheckSpec({ path: "/not-ready" }), at(), 2000), {
      kind: "response",
      response: { status: 503, contentType: "text/plain", body: "warming up" },
    });
  });

  it("keeps at most 4 KiB of the body", async () => {
    const p = await probeReadiness(readinessCheckSpec({ path: "/big" }), at(), 2000);
    assert.equal(p.kind, "response");
    assert.equal(p.kind === "response" ? p.response.body.length : 0, 4096);
    await until("the connection to close", () => server.open() === 0);
  });

  it("no answer: an error naming the URL", async () => {
    const r = await probeReadiness(readinessCheckSpec({ path: "/hang" }), at(), 200);
    assert.deepEqual(r, {
      kind: "error",
      message: `could not query http://127.0.0.1:${server.port}/hang: no answer within 200 ms`,
    });
    assert.deepEqual(await probeReadiness(readinessCheckSpec(), undefined, 200), {
      kind: "error",
      message: "no port named http-api",
    });
  });

  it("HTTPS without certificate verification", async () => {
    const tls = await httpsServer();
    try {
      const r = await probeReadiness(
        readinessCheckSpec({ protocol: "HTTPS", path: "/ready" }),
        { host: HOST, port: tls.port },
        2000,
      );
      assert.equal(r.kind === "response" ? r.response.status : 0, 200);
    } finally {
      await tls.close();
    }
  });
});
