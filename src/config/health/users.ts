// exec.user: who exec checks run as. Looked up in /etc/passwd (the accounts a minimal host has;
// NSS sources such as LDAP are not asked), by name or by uid; root is refused, since the point
// is to run operator-supplied commands without the daemon's privileges.
import { readFileSync } from 'node:fs';

import type { ExecUser } from './types.js';

export type UserLookup = { ok: true; user: ExecUser } | { ok: false; reason: string };

const PASSWD = '/etc/passwd';

/** /etc/passwd as read on its first use by this process (it rarely changes under a daemon). */
let cached: { at: number; entries: ExecUser[] } | undefined;
const CACHE_MS = 10_000;

function passwd(): ExecUser[] {
  const now = Date.now();
  if (cached !== undefined && now - cached.at < CACHE_MS) return cached.entries;
  const entries: ExecUser[] = [];
  for (const line of readFileSync(PASSWD, 'utf8').split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === undefined || name === '' || name.startsWith('#') || uid === undefined || gid === undefined) continue;
    if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) continue;
    entries.push({ name, uid: Number(uid), gid: Number(gid) });
  }
  cached = { at: now, entries };
  return entries;
}

export function lookupUser(nameOrUid: string): UserLookup {
  let entries: ExecUser[];
  try {
    entries = passwd();
  } catch (e) {
    return { ok: false, reason: `cannot read ${PASSWD} to find user ${JSON.stringify(nameOrUid)} (${(e as Error).message})` };
  }
  const byUid = /^\d+$/.test(nameOrUid);
  const user = entries.find((u) => (byUid ? u.uid === Number(nameOrUid) : u.name === nameOrUid));
  if (user === undefined) return { ok: false, reason: `no ${byUid ? 'uid' : 'user'} ${JSON.stringify(nameOrUid)} in ${PASSWD}` };
  if (user.uid === 0) return { ok: false, reason: `${JSON.stringify(nameOrUid)} is root (uid 0): exec checks run as an unprivileged user; name one (default "nobody")` };
  return { ok: true, user };
}
