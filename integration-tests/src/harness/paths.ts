import { fileURLToPath } from "node:url";

/** The repository root: this file is integration-tests/{src,dist}/harness/paths.{ts,js}. */
export const repoRoot: string = fileURLToPath(new URL("../../../", import.meta.url));
