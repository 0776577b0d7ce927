export * from "./bus.js";
export * from "./event-messages.js";
export * from "./events.js";
export * from "./status.js";
