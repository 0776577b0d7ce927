// Imported before testcontainers: the settings this machine needs (see /work/shared/RECIPES.md), unless the
// caller already chose. Ryuk's image cannot be pulled (no registry), and without a host override
// testcontainers starts an alpine container to find the Docker host.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true";
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= "localhost";

export {};
