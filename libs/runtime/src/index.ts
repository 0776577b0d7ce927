/**
 * @drover/runtime: the executor contract and its runtimes (Docker, simulated). The conformance suite
 * every runtime passes is a separate entry point, `@drover/runtime/conformance` (it imports node:test).
 */
export * from "./docker/index.js";
export * from "./executor.js";
export * from "./health/index.js";
export * from "./launch-spec.js";
export * from "./outcome.js";
export * from "./simulated/index.js";
