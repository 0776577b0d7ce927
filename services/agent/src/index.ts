export { Agent, type AgentIdentity, type AgentOptions, portsOf } from "./agent.js";
