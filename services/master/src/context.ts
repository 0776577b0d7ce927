/** What every component of the master leader shares: its state, indexes, clock, config and log. */
import type { Clock, Logger } from "@drover/common";
import type { MasterConfig } from "@drover/config";
import type { OfferBook } from "./offers.js";
import type { MasterState } from "./state.js";
import type { TaskIndex } from "./task-index.js";

export interface MasterContext {
  readonly state: MasterState;
  readonly index: TaskIndex;
  readonly offers: OfferBook;
  readonly clock: Clock;
  readonly config: MasterConfig;
  readonly log: Logger;
}
