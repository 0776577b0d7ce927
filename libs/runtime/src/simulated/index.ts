export * from "./fate.js";
export * from "./host.js";
export * from "./random.js";
export * from "./simulated.js";
