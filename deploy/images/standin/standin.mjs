// The stand-in server of the drover/standin:1 test image: stands in for the real images of Marathon
// app definitions (nginx, tomcat, python's http.server, ...), which cannot be pulled here.
//
// It serves on every port it is told, each as one of:
//   http:PORT   HTTP/1.1, 200 on any method and path (health and readiness checks included)
//   https:PORT  the same over TLS, with the image's self-signed test certificate
//   tcp:PORT    accepts connections and holds them until the peer closes
//   udp:PORT    echoes datagrams
//   any:PORT    TLS if the first byte is a TLS handshake, else HTTP; a connection that sends
//               nothing is held as tcp: does (what a TCP check needs)
// The ports come from its arguments (`standin http:8080 https:443`), else from $STANDIN_LISTEN
// (`http:8080,https:443,tcp:5432`), else `any:` on every port of $PORTS and $PORT0, $PORT1, ... (the
// host ports Marathon's environment gives a task on host networking). With no port at all it idles.
// SIGTERM or SIGINT: it closes everything and exits 0.
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { hostname } from "node:os";
import { Duplex } from "node:stream";
import { createSecureContext, TLSSocket } from "node:tls";

const KINDS = new Set(["http", "https", "tcp", "udp", "any"]);
const log = (msg) => process.stdout.write(`standin: ${msg}\n`);

function specsFrom(words) {
  return words
    .map((w) => w.trim())
    .filter((w) => w !== "")
    .map((w) => {
      const m = /^([a-z]+):(\d{1,5})$/.exec(w);
      if (!m || !KINDS.has(m[1]) || Number(m[2]) < 1 || Number(m[2]) > 65535) {
        log(`bad listen spec ${JSON.stringify(w)} (want http|https|tcp|udp|any:PORT)`);
        process.exit(2);
      }
      return { kind: m[1], port: Number(m[2]) };
    });
}

function defaultSpecs() {
  const ports = new Set();
  for (const p of (process.env.PORTS ?? "").split(",")) if (/^\d+$/.test(p.trim())) ports.add(Number(p));
  for (const [k, v] of Object.entries(process.env))
    if (/^PORT\d+$/.test(k) && /^\d+$/.test(v ?? "")) ports.add(Number(v));
  return [...ports].filter((p) => p > 0 && p < 65536).map((port) => ({ kind: "any", port }));
}

const args = process.argv.slice(2);
const specs =
  args.length > 0
    ? specsFrom(args)
    : process.env.STANDIN_LISTEN
      ? specsFrom(process.env.STANDIN_LISTEN.split(","))
      : defaultSpecs();

let tlsContext;
function secureContext() {
  if (tlsContext === undefined) {
    const dir = process.env.STANDIN_TLS_DIR ?? "/standin";
    tlsContext = createSecureContext({
      cert: readFileSync(`${dir}/cert.pem`),
      key: readFileSync(`${dir}/key.pem`),
    });
  }
  return tlsContext;
}

const sockets = new Set();
const closers = [];
const track = (socket) => {
  sockets.add(socket);
  socket.on("close", () => sockets.delete(socket));
  socket.on("error", () => socket.destroy());
};

const http = createHttpServer((req, res) => {
  req.resume();
  const body = `standin ${hostname()} ${req.method} ${req.url}\n`;
  res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
  res.end(req.method === "HEAD" ? undefined : body);
});
http.on("clientError", (_err, socket) => socket.destroy());

function serveTls(socket) {
  const tls = new TLSSocket(socket, { isServer: true, secureContext: secureContext() });
  track(tls);
  http.emit("connection", tls);
}

function onConnection(kind, socket) {
  track(socket);
  if (kind === "http") return http.emit("connection", socket);
  if (kind === "https") return serveTls(socket);
  if (kind === "tcp") return socket.resume();
  // any: look at the first byte, then hand the socket on with what was read put back. TLSSocket reads
  // a net.Socket's handle directly (it would miss what was read), so it gets a stream in between.
  socket.once("data", (chunk) => {
    socket.pause();
    if (chunk[0] !== 0x16) {
      socket.unshift(chunk);
      http.emit("connection", socket);
      socket.resume();
      return;
    }
    const between = new Duplex({
      read: () => socket.resume(),
      write: (data, encoding, done) => socket.write(data, encoding, done),
      final: (done) => socket.end(done),
      destroy: (err, done) => {
        socket.destroy();
        done(err);
      },
    });
    socket.on("data", (data) => {
      if (!between.push(data)) socket.pause();
    });
    socket.on("end", () => between.push(null));
    socket.on("close", () => between.destroy());
    between.push(chunk);
    serveTls(between);
  });
}

function listen({ kind, port }) {
  const what = `${kind}:${port}`;
  const failed = (err) => {
    log(`cannot listen on ${what}: ${err.message}`);
    process.exit(1);
  };
  if (kind === "udp") {
    const udp = createSocket("udp4");
    udp.on("message", (msg, from) => udp.send(msg, from.port, from.address));
    udp.once("error", failed);
    udp.bind(port, () => log(`listening on ${what}`));
    closers.push(() => udp.close());
    return;
  }
  if (kind === "https") secureContext(); // a missing certificate fails now, not at the first client
  const server = createNetServer((socket) => onConnection(kind, socket));
  server.once("error", failed);
  server.listen(port, () => log(`listening on ${what}`));
  closers.push(() => server.close());
}

function stop(signal) {
  log(`${signal}: exiting`);
  for (const close of closers) close();
  for (const s of sockets) s.destroy();
  process.exit(0);
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));

if (specs.length === 0) log("no port to serve: idling");
for (const spec of specs) listen(spec);
// Keeps the process alive when it serves nothing (servers keep it alive otherwise).
setInterval(() => undefined, 1 << 30);
