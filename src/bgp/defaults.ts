// Defaults of the `bgp` section and of the BIRD instance l4mux runs.
import type { BfdTimers } from './types.js';

/** Seconds. Short, as load balancers use: the router drops a silent mux after this long. */
export const DEFAULT_HOLD_TIME = 9;
export const DEFAULT_BFD: BfdTimers = { interval: 100, multiplier: 3 };
export const DEFAULT_DRAIN_SECONDS = 10;
export const DEFAULT_RUN_DIRECTORY = '/run/l4mux/bird';
export const DEFAULT_BIRD = '/usr/sbin/bird';
/** TCP MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN). */
export const MAX_PASSWORD_LENGTH = 80;
export const NEIGHBOUR_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
