/**
 * The files the corpus's fetch URIs name, made in the test and served from 127.0.0.1: a .tgz
 * (ustar + gzip) and a .zip (stored entries, Unix modes) written here, so that serving them needs
 * no tool; the agent's fetcher unpacks them with the system's tar and unzip, as it would the real ones.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { crc32, gzipSync } from "node:zlib";

export interface ArchiveEntry {
  /** Path inside the archive; a directory ends with "/". */
  name: string;
  content?: string;
  /** Unix permission bits (default 0o644 for a file, 0o755 for a directory). */
  mode?: number;
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, "0")}\0`;
}

/** A gzip-compressed ustar archive of `entries`. */
export function tarGz(entries: readonly ArchiveEntry[]): Buffer {
  const blocks: Buffer[] = [];
  const mtime = Math.floor(Date.now() / 1000);
  for (const e of entries) {
    const dir = e.name.endsWith("/");
    const body = Buffer.from(dir ? "" : (e.content ?? ""), "utf8");
    const header = Buffer.alloc(512);
    header.write(e.name, 0, 100, "utf8");
    header.write(octal(e.mode ?? (dir ? 0o755 : 0o644), 8), 100, "ascii");
    header.write(octal(0, 8), 108, "ascii");
    header.write(octal(0, 8), 116, "ascii");
    header.write(octal(body.length, 12), 124, "ascii");
    header.write(octal(mtime, 12), 136, "ascii");
    header.write("        ", 148, "ascii"); // the checksum counts its own field as spaces
    header.write(dir ? "5" : "0", 156, "ascii");
    header.write("ustar\u000000", 257, "ascii");
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** A zip archive of `entries`, stored (not compressed), with Unix permission bits. */
export function zip(entries: readonly ArchiveEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const dir = e.name.endsWith("/");
    const name = Buffer.from(e.name, "utf8");
    const body = Buffer.from(dir ? "" : (e.content ?? ""), "utf8");
    const crc = crc32(body);
    const mode = (dir ? 0o040000 : 0o100000) | (e.mode ?? (dir ? 0o755 : 0o644));
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0, 6); // flags
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt16LE(0, 10); // time
    local.writeUInt16LE(0x21, 12); // date: 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(body.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by: Unix, so unzip applies the mode
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(body.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((mode << 16) >>> 0, 38); // external attributes
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const dirBytes = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(dirBytes.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, dirBytes, end]);
}

export interface FileServer {
  /** `http://127.0.0.1:<port>` */
  readonly base: string;
  /** Requests served, by path (404s included). */
  readonly hits: Map<string, number>;
  close(): Promise<void>;
}

/** Serves `files` (path → bytes) on 127.0.0.1; any other path is a 404. */
export async function serveFiles(files: ReadonlyMap<string, Buffer>): Promise<FileServer> {
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const body = files.get(path);
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": body.length }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
