export * from "./check.js";
export * from "./checker.js";
export * from "./command.js";
export * from "./docker.js";
