export { Agent, type AgentIdentity, portsOf } from "./agent.js";
