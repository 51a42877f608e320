// The state machine of one backend's health, apart from any timing.
//
//   unknown --1 success------------> up      (no evidence against it: serve at once)
//   unknown --`fall` failures------> down
//   up      --`fall` failures------> down
//   down    --`rise` successes-----> up
//
// Counting is by consecutive results: a success clears the failure count and the reverse.
// Starting out "unknown" and needing `fall` failures to go down matches keepalived and HAProxy,
// which consider servers up until checks prove otherwise; a consumer that wants the stricter
// "down until proven up" (keepalived's alpha) treats unknown as down.
import type { HealthState } from './types.js';

export interface Streaks {
  state: HealthState;
  successes: number;
  failures: number;
}

/** Counts one result; returns the new state when it changes, else undefined. */
export function countResult(streaks: Streaks, ok: boolean, rise: number, fall: number): HealthState | undefined {
  if (ok) {
    streaks.successes++;
    streaks.failures = 0;
    if (streaks.state === 'unknown' || (streaks.state === 'down' && streaks.successes >= rise)) return 'up';
    return undefined;
  }
  streaks.failures++;
  streaks.successes = 0;
  if (streaks.state !== 'down' && streaks.failures >= fall) return 'down';
  return undefined;
}

/** The reason given for a transition, with the last result's detail. */
export function transitionReason(to: HealthState, streaks: Streaks, from: HealthState, detail: string): string {
  if (to === 'up' && from === 'unknown') return `first check succeeded: ${detail}`;
  if (to === 'up') return `${plural(streaks.successes, 'successful check')} in a row: ${detail}`;
  return `${plural(streaks.failures, 'failed check')} in a row: ${detail}`;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}
