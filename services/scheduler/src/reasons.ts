/** Why instances wait, as the API and the CLI word it. */
import { formatReason, type UnplacedReason } from "@drover/core";
import type { WaitingReason } from "@drover/proto";

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** A reason as the API and the CLI show it ("insufficient mem on 12 agents", "port 80 taken on 3 agents"). */
export function reasonToWire(r: UnplacedReason): WaitingReason {
  switch (r.kind) {
    case "insufficient":
      return {
        kind: `insufficient_${r.resource}`,
        agents: r.agents,
        port: 0,
        text: `insufficient ${r.resource} on ${plural(r.agents, "agent")}`,
      };
    case "port_taken":
      return {
        kind: "port_taken",
        agents: r.agents,
        port: r.port,
        text: `port ${r.port} taken on ${plural(r.agents, "agent")}`,
      };
    case "no_offers":
      return { kind: "no_offers", agents: 0, port: 0, text: "no offers received yet" };
    case "constraint":
      return { kind: "constraint", agents: r.agents, port: 0, text: formatReason(r) };
    default:
      return { kind: "unknown", agents: 0, port: 0, text: JSON.stringify(r) };
  }
}

export function reasonToText(r: UnplacedReason): string {
  return reasonToWire(r).text;
}
