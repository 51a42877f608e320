// Limits of the checker itself (the checks' defaults and limits are configuration:
// src/config/health/defaults.ts).

/** Bytes of a response body (http) or of an exec check's output kept for matching. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Exec checks running at the same time, per checker; more wait for a slot. */
export const DEFAULT_MAX_CONCURRENT_EXEC = 16;
/** Probes the scheduler starts in one turn of the event loop before it yields. */
export const MAX_STARTS_PER_TURN = 64;
export const USER_AGENT = 'l4mux-health/1';
