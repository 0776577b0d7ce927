/** Pure classification of a stopped container into a terminal task state. */
import type { ExecutorTerminalState } from "./executor.js";

export interface ContainerExitState {
  ExitCode?: number | undefined;
  OOMKilled?: boolean | undefined;
  Error?: string | undefined;
}

export interface TerminalOutcome {
  state: ExecutorTerminalState;
  message: string;
  exitCode?: number | undefined;
}

/**
 * A kill we requested → TASK_KILLED whatever the exit code; exit code 0 → TASK_FINISHED;
 * anything else → TASK_FAILED with the code, OOMKilled and Docker's State.Error.
 */
export function classifyExit(state: ContainerExitState, killRequested: boolean): TerminalOutcome {
  const exitCode = state.ExitCode ?? -1;
  const oom = state.OOMKilled === true;
  const err = state.Error ? `: ${state.Error}` : "";
  if (killRequested) {
    return { state: "TASK_KILLED", message: `killed (exited with code ${exitCode})`, exitCode };
  }
  if (exitCode === 0) {
    return { state: "TASK_FINISHED", message: "exited with code 0", exitCode };
  }
  return { state: "TASK_FAILED", message: `exited with code ${exitCode} (OOMKilled=${oom})${err}`, exitCode };
}
