// Limits of the checker itself (the checks' defaults and limits are configuration:
// src/config/health/defaults.ts).

/** Bytes of a response body (http) or of an exec check's output kept for matching. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Exec checks running at the same time, per checker; more wait for a slot. */
export const DEFAULT_MAX_CONCURRENT_EXEC = 16;
/** Probes the scheduler starts in one turn of the event loop before it yields. */
export const MAX_STARTS_PER_TURN = 64;
export const USER_AGENT = 'l4mux-health/1';
/**
 * A probe that timed out although its deadline was extended by the event loop's stalls (up to
 * one timeout more), with the loop running for less than (1 - LOOP_STALL_FRACTION) of the
 * timeout and stalled at least LOOP_STALL_MIN_MS, is a local fault (LOOPSTALL), not a failure of
 * the backend: the answer may have been there, unread.
 */
export const LOOP_STALL_FRACTION = 0.25;
export const LOOP_STALL_MIN_MS = 50;
