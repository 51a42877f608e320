// Membership over the channel on loopback: live when heard, dead after deadAfter silent
// intervals, live again when heard; config mismatches reported; readiness carried.
import { afterEach, describe, expect, it } from 'vitest';

import { Channel } from '../../src/cluster/channel.js';
import { Membership } from '../../src/cluster/membership.js';

const SECRET = Buffer.alloc(32, 3);
let port = 41000 + (process.pid % 500) * 4;
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function node(id: string, peer: string, myPort: number, peerPort: number, fingerprint = 1n): Promise<{ channel: Channel; membership: Membership }> {
  const channel = new Channel({ self: { id, address: '127.0.0.1', port: myPort }, peers: [{ id: peer, address: '127.0.0.1', port: peerPort }], secret: SECRET, maxRate: 1e8 });
  await channel.start();
  const membership = new Membership(channel, { peers: [peer], intervalMs: 20, deadAfter: 3, fingerprint });
  membership.start();
  cleanup.push(() => channel.close(), () => membership.stop());
  return { channel, membership };
}

async function until(probe: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('membership', () => {
  it('joins when heard, leaves after deadAfter missed beats, rejoins after a restart', async () => {
    const pa = port++;
    const pb = port++;
    const a = await node('a', 'b', pa, pb);
    const events: string[] = [];
    a.membership.on('join', (p) => events.push(`join ${p}`));
    a.membership.on('leave', (p) => events.push(`leave ${p}`));
    let b = await node('b', 'a', pb, pa);
    b.membership.ready = true;
    await until(() => a.membership.isLive('b') && a.membership.status()[0]?.ready === true);
    expect(a.membership.status()[0]).toMatchObject({ id: 'b', state: 'live', configMismatch: false, joins: 1 });

    b.membership.stop();
    await b.channel.close();
    const silentFrom = Date.now();
    await until(() => !a.membership.isLive('b'));
    // Three intervals of 20 ms, checked once per interval.
    expect(Date.now() - silentFrom).toBeGreaterThanOrEqual(40);
    expect(a.membership.status()[0]).toMatchObject({ state: 'dead', leaves: 1, ready: false });

    b = await node('b', 'a', pb, pa);
    await until(() => a.membership.isLive('b'));
    expect(events).toEqual(['join b', 'leave b', 'join b']);
  });

  it('reports a peer whose cluster config differs', async () => {
    const pa = port++;
    const pb = port++;
    const a = await node('a', 'b', pa, pb, 1n);
    const mismatches: string[] = [];
    a.membership.on('mismatch', (p) => mismatches.push(p));
    await node('b', 'a', pb, pa, 2n);
    await until(() => mismatches.length > 0);
    expect(a.membership.status()[0]?.configMismatch).toBe(true);
  });
});
