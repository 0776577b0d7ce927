import { FailedPreconditionError } from "@drover/common";

/**
 * A change refused because deployments run for its app(s) (Marathon's 409 "App is locked by one or
 * more deployments"). A FAILED_PRECONDITION that names the deployments, so a transport can list them.
 */
export class AppLockedError extends FailedPreconditionError {
  constructor(
    /** The app locked (several, comma-separated, for a group's change). */
    readonly appId: string,
    readonly deploymentIds: string[],
  ) {
    super(
      `app ${appId} ${appId.includes(",") ? "are" : "is"} locked by deployment ${deploymentIds.join(", ")}; override with force (--force)`,
    );
  }
}
