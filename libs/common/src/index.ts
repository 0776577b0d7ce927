export * from "./errors.js";
export * from "./grpc-client.js";
export * from "./grpc-errors.js";
export * from "./grpc-server.js";
export * from "./log.js";
export * from "./safe-text.js";
export * from "./time.js";
