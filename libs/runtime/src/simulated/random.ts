/**
 * Seeded randomness for the simulated runtime. Each task draws from its own stream, seeded by the
 * simulation seed, its agent id and its task id, so a task's fate does not depend on the order in
 * which tasks are launched across agents.
 */

/** mulberry32: a small, fast 32-bit PRNG; returns numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a over the UTF-16 code units of `text`, mixed with `seed`: a 32-bit stream seed. */
export function hashSeed(seed: number, text: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The random stream of one task. */
export function taskRandom(seed: number, agentId: string, taskId: string): () => number {
  return mulberry32(hashSeed(seed, `${agentId}\u0000${taskId}`));
}

/** An integer in [min, max] (both included) from `r`. */
export function between(r: number, min: number, max: number): number {
  return min + Math.floor(r * (max - min + 1));
}
