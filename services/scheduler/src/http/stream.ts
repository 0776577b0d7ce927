/**
 * Large listings (GET /v2/apps?embed=apps.tasks, GET /v2/tasks) as a stream of JSON text: each item
 * is built and serialized as the socket takes it, so at 100,000 tasks the server never holds every
 * item's view and the whole answer at once (Marathon's listing at scale: COMPLAINTS.md 7).
 */
import { Readable } from "node:stream";

/** Chunks of about this many characters are handed to the socket. */
const CHUNK = 64 * 1024;

/**
 * `{"<key>":[item,item,...]}` as a stream: `view` turns one item into its JSON value, called
 * lazily as the client reads. The answer is the same text JSON.stringify would give.
 */
export function jsonListStream<T>(key: string, items: Iterable<T>, view: (item: T) => unknown): Readable {
  function* chunks(): Generator<string> {
    let buf = `{${JSON.stringify(key)}:[`;
    let first = true;
    for (const item of items) {
      // As JSON.stringify prints an array entry with no JSON value (undefined): null.
      const text = JSON.stringify(view(item)) ?? "null";
      buf += first ? text : `,${text}`;
      first = false;
      if (buf.length >= CHUNK) {
        yield buf;
        buf = "";
      }
    }
    yield `${buf}]}`;
  }
  return Readable.from(chunks(), { objectMode: false });
}
