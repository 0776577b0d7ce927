/**
 * Test helpers of the health checks (not exported by the package): a self-signed certificate made
 * with node:crypto alone, real local servers that answer as told, and waiting on a condition.
 */
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import http from "node:http";
import https from "node:https";
import net from "node:net";

// ─── a self-signed X.509 v3 certificate (ECDSA P-256), DER-encoded by hand ────────────────────────

function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

const seq = (...items: Buffer[]) => der(0x30, Buffer.concat(items));

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split(".").map(Number);
  const bytes = [40 * a + b];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}

function utcTime(ms: number): Buffer {
  const iso = new Date(ms).toISOString(); // 2024-01-02T03:04:05.678Z
  const s = `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return der(0x17, Buffer.from(s, "ascii"));
}

/** A certificate for CN=127.0.0.1 (and that IP as subjectAltName), valid from a day ago for a day. */
export function selfSignedCertificate(nowMs = Date.now()): { cert: string; key: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const ecdsaWithSha256 = seq(oid("1.2.840.10045.4.3.2"));
  const name = seq(der(0x31, seq(oid("2.5.4.3"), der(0x0c, Buffer.from("127.0.0.1")))));
  const serial = randomBytes(8);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40; // positive, and minimal (a leading 0x00 would be padding)
  const san = seq(oid("2.5.29.17"), der(0x04, seq(der(0x87, Buffer.from([127, 0, 0, 1])))));
  const tbs = seq(
    der(0xa0, der(0x02, Buffer.from([2]))), // version v3
    der(0x02, serial),
    ecdsaWithSha256,
    name,
    seq(utcTime(nowMs - 86_400_000), utcTime(nowMs + 86_400_000)),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    der(0xa3, seq(san)),
  );
  const signature = sign("sha256", tbs, privateKey);
  const certDer = seq(tbs, ecdsaWithSha256, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const b64 = certDer.toString("base64").replace(/(.{64})/g, "$1\n");
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${b64.trimEnd()}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

// ─── local servers ───────────────────────────────────────────────────────────────────────────────

/**
 * Routes: /ok 200 · /fail 500 · /redirect 302 · /hang never answers · /processing 102 then hangs ·
 * /processing-then-ok 102 then 200 · /ready 200 with a JSON body · /not-ready 503 with a text body ·
 * /big 200 with 100 KiB · /flip: 200 while `flip.healthy`, else 500 · anything else 404.
 */
export interface TestServer {
  port: number;
  /** Requests seen, by path. */
  hits: Map<string, number>;
  /** Connections open now. */
  open(): number;
  flip: { healthy: boolean };
  close(): Promise<void>;
}

function handler(state: { hits: Map<string, number>; flip: { healthy: boolean } }) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = req.url ?? "/";
    state.hits.set(path, (state.hits.get(path) ?? 0) + 1);
    switch (path) {
      case "/ok":
        return res.end("ok");
      case "/fail":
        res.statusCode = 500;
        return res.end("fail");
      case "/redirect":
        res.writeHead(302, { location: "/elsewhere" });
        return res.end();
      case "/hang":
        return;
      case "/processing":
        return res.writeProcessing();
      case "/processing-then-ok":
        res.writeProcessing();
        return setTimeout(() => res.end("ok"), 20);
      case "/ready":
        res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
        return res.end('{"ready":true}');
      case "/not-ready":
        res.writeHead(503, { "content-type": "text/plain" });
        return res.end("warming up");
      case "/big":
        res.writeHead(200, { "content-type": "text/plain" });
        return res.end("x".repeat(100 * 1024));
      case "/flip":
        res.statusCode = state.flip.healthy ? 200 : 500;
        return res.end();
      default:
        res.statusCode = 404;
        return res.end();
    }
  };
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

async function serve(
  server: http.Server | https.Server,
  hits: Map<string, number>,
  flip: { healthy: boolean },
) {
  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    port,
    hits,
    flip,
    open: () => sockets.size,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export async function httpServer(): Promise<TestServer> {
  const hits = new Map<string, number>();
  const flip = { healthy: true };
  return serve(http.createServer(handler({ hits, flip })), hits, flip);
}

export async function httpsServer(): Promise<TestServer> {
  const hits = new Map<string, number>();
  const flip = { healthy: true };
  return serve(https.createServer(selfSignedCertificate(), handler({ hits, flip })), hits, flip);
}

/** A raw server that answers every connection with `head` (e.g. a 101 or a bare 100) and then hangs. */
export async function rawServer(head: string): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.once("close", () => sockets.delete(s));
    s.once("data", () => s.write(head));
  });
  const port = await listen(server);
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nothing listens on: one just used and closed. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ─── waiting ─────────────────────────────────────────────────────────────────────────────────────

/** Resolves once `cond()` holds; fails with `what` after `timeoutMs`. */
export async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
