export * from "./cron.js";
export * from "./run.js";
export * from "./schedule.js";
export * from "./spec.js";
export * from "./task.js";
