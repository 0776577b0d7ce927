export { isTerminal, type TaskState } from "@drover/core";
export { Framework } from "./framework.js";
export type {
  FrameworkHandlers,
  FrameworkOffer,
  FrameworkOptions,
  FrameworkTask,
  TaskSpec,
  TaskUpdate,
} from "./types.js";
