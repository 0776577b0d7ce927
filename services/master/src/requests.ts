/**
 * zod schemas of what agents and frameworks send the master, in domain shape (after the
 * wire → domain mappers). A request that fails them is refused with INVALID_ARGUMENT and the
 * field paths; nothing is written.
 */
import { InvalidArgumentError } from "@drover/common";
import { LIMITS, ResourcesSchema, TaskStatusSchema, validate } from "@drover/core";
import { z } from "zod";

const Id = z.string().regex(/^[a-zA-Z0-9._-]{1,64}$/, "must be 1-64 of [a-zA-Z0-9._-]");

export const TaskIdSchema = z
  .string()
  .regex(
    new RegExp(`^[a-zA-Z0-9._-]{1,${LIMITS.taskIdChars}}$`),
    `must be 1-${LIMITS.taskIdChars} of [a-zA-Z0-9._-]`,
  );

export const RegisterAgentSchema = z.object({
  agentId: Id,
  hostname: z.string().max(LIMITS.hostnameChars),
  resources: ResourcesSchema.refine((r) => r.cpus > 0 && r.mem > 0, {
    message: "cpus and mem must be > 0",
  }),
  attributes: z
    .record(z.string().min(1).max(LIMITS.attributeKeyChars), z.string().max(LIMITS.attributeValueChars))
    .refine((a) => Object.keys(a).length <= LIMITS.attributeCount, {
      message: `at most ${LIMITS.attributeCount} attributes`,
    }),
  tasks: z
    .array(
      z.object({
        taskId: TaskIdSchema,
        status: TaskStatusSchema.refine((st) => st.message.length <= LIMITS.statusMessageChars, {
          message: `message: at most ${LIMITS.statusMessageChars} characters`,
        }),
      }),
    )
    .max(LIMITS.tasksPerMessage),
});
export type RegisterAgentRequest = z.infer<typeof RegisterAgentSchema>;

export const SubscribeSchema = z.object({
  /** Empty for a new framework. */
  frameworkId: z.union([z.literal(""), Id]),
  name: z.string().min(1).max(LIMITS.nameChars),
  role: z.string().max(64),
  failoverTimeoutSeconds: z
    .number()
    .min(0)
    .max(365 * 24 * 3600),
});
export type SubscribeRequest = z.infer<typeof SubscribeSchema>;

/** Validates or throws InvalidArgumentError with the field paths. */
export function parseRequest<T>(schema: z.ZodType<T>, input: unknown): T {
  const v = validate(schema, input);
  if (!v.ok) throw new InvalidArgumentError(v.issues);
  return v.value;
}
