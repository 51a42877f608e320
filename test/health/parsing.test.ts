// Small pure parts: weights, status lists, hex, the due-time heap.
import { describe, expect, it } from 'vitest';

import { normalizeHex, parseStatusRanges } from '../../src/config/health/index.js';
import { countResult, parseWeightText, parseWeightValue, type Streaks } from '../../src/health/index.js';
import { DueQueue, type Scheduled } from '../../src/health/queue.js';

describe('weights reported by backends', () => {
  it.each([
    ['weight=20', 20],
    ['WEIGHT = 20\n', 20],
    ['status ok\nload 0.4\nweight=7\n', 7],
    ['weight: 9', 9],
    ['  12  \n', 12],
    ['50%', 5],
    ['weight=200%', 20],
    ['0', 0],
    ['999999', 65535],
  ])('%j from stdout or a body gives %d (configured weight 10)', (text, weight) => {
    expect(parseWeightText(text, 10)).toEqual({ ok: true, weight });
  });

  it.each([['all good'], ['12 apples'], ['']])('%j reports no weight', (text) => {
    expect(parseWeightText(text, 10)).toBeUndefined();
  });

  it('rejects a fractional absolute weight and accepts header values', () => {
    expect(parseWeightText('weight=2.5', 10)).toEqual({ ok: false, reason: '2.5 is not an integer weight' });
    expect(parseWeightValue('33', 10)).toEqual({ ok: true, weight: 33 });
    expect(parseWeightValue('75%', 8)).toEqual({ ok: true, weight: 6 });
    expect(parseWeightValue('high', 8)).toEqual({ ok: false, reason: '"high" is not a weight (an integer, or a percentage like "50%")' });
  });
});

describe('status code lists', () => {
  it('parses single codes, ranges and lists', () => {
    expect(parseStatusRanges('200')).toEqual({ ok: true, ranges: [[200, 200]] });
    expect(parseStatusRanges('200-299, 301 ,302-302')).toEqual({ ok: true, ranges: [[200, 299], [301, 301], [302, 302]] });
  });
  it.each(['', '2xx', '200-', '20', '200;204'])('refuses %j', (text) => {
    expect(parseStatusRanges(text).ok).toBe(false);
  });
});

describe('hex payloads', () => {
  it('accepts pairs of digits with optional 0x, spaces and colons', () => {
    expect(normalizeHex('0xCA FE:01')).toBe('cafe01');
    expect(normalizeHex('abc')).toBeUndefined();
    expect(normalizeHex('zz')).toBeUndefined();
    expect(normalizeHex('')).toBeUndefined();
  });
});

describe('countResult', () => {
  it('counts streaks and reports only changes', () => {
    const s: Streaks = { state: 'unknown', successes: 0, failures: 0 };
    const seen = [false, false, true, false, false, false, true, true].map((ok) => {
      const to = countResult(s, ok, 2, 3);
      if (to !== undefined) s.state = to;
      return to ?? '-';
    });
    expect(seen).toEqual(['-', '-', 'up', '-', '-', 'down', '-', 'up']);
  });
});

describe('DueQueue', () => {
  it('pops in due order, supports moving and removing entries', () => {
    const q = new DueQueue<Scheduled & { id: number }>();
    const items = Array.from({ length: 200 }, (_, id) => ({ id, dueAt: 0, heapIndex: -1 }));
    const dues = items.map(() => Math.random() * 1000);
    items.forEach((item, i) => q.schedule(item, dues[i] ?? 0));
    q.schedule(items[5] as (typeof items)[number], 2000); // moved to the end
    q.remove(items[7] as (typeof items)[number]);
    const popped: number[] = [];
    for (let item = q.popDue(5000); item !== undefined; item = q.popDue(5000)) popped.push(item.dueAt);
    expect(popped.length).toBe(199);
    expect(popped).toEqual([...popped].sort((a, b) => a - b));
    expect(popped.at(-1)).toBe(2000);
    expect(q.size).toBe(0);
    expect(items[7]?.heapIndex).toBe(-1);
  });
});
