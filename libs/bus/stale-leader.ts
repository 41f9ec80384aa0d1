/**
 * A leader write was refused because another planner has led since: the versions stream or the
 * targets bucket moved under this planner (a conditional write failed) or a newer term claimed it.
 * The planner must stop acting and follow; the write is not retried.
 */
export class StaleLeaderError extends Error {}
