export * from "./docker.js";
export * from "./docker-errors.js";
export * from "./docker-events.js";
export * from "./image.js";
export * from "./labels.js";
export * from "./spec.js";
