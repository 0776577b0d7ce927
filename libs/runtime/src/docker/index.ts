export * from "./docker.js";
export * from "./docker-errors.js";
export * from "./docker-events.js";
export { FetchError, Fetcher, type FetcherOptions } from "./fetch.js";
export * from "./image.js";
export * from "./labels.js";
export {
  type DockerParameter,
  dockerParameters,
  type ParameterEffects,
  type ParametersResult,
  SUPPORTED_DOCKER_PARAMETERS,
} from "./parameters.js";
export { LABEL_VOLUME, LABEL_VOLUME_CREATED_BY, LABEL_VOLUME_SIZE_MIB } from "./prerequisites.js";
export { Sandboxes } from "./sandbox.js";
export * from "./spec.js";
