import assert from "node:assert/strict";
import { text } from "node:stream/consumers";
import { test } from "node:test";
import fc from "fast-check";
import { jsonListStream } from "./stream.js";

test("a streamed listing is the text JSON.stringify gives, whatever its size (chunks of 64 KB)", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.jsonValue(), { maxLength: 40 }), async (items) => {
      const streamed = await text(jsonListStream("apps", items, (x) => x));
      assert.equal(streamed, JSON.stringify({ apps: items }));
    }),
  );
  // Many chunks: 20,000 items of about 100 characters.
  const big = Array.from({ length: 20_000 }, (_, i) => ({ id: `/app-${i}`, cmd: "x".repeat(80) }));
  const out = await text(jsonListStream("tasks", big, (t) => ({ ...t, n: 1 })));
  assert.deepEqual(JSON.parse(out), { tasks: big.map((t) => ({ ...t, n: 1 })) });
});
