// Flow records in TypeScript: the same golden bytes as native/tests/flow_record_test.cc, so
// the TS mirror and the native layout agree field by field.
import { describe, expect, it } from 'vitest';

import {
  decodeFlowRecord,
  decodeFlowRecords,
  encodeFlowRecord,
  encodeFlowRecords,
  FLOW_RECORD_SIZE,
  type FlowRecord,
  NO_MEMBER,
} from '../../src/cluster/record.js';

const GOLDEN_V4 =
  '01010406030102ff' +
  '00000000000000000000ffffc6336407' +
  '00000000000000000000ffffc000020a' +
  '00000000000000000000ffff0a010002' +
  '9c40005000000384';
const GOLDEN_V6 =
  '0104061101000201' +
  '20010db8000000000000000000000007' +
  '20010db8000100000000000000000010' +
  '00000000000000000000ffff0a010003' +
  '14e900350000003c';

const v4: FlowRecord = {
  kind: 'new',
  family: 4,
  protocol: 6,
  proven: true,
  mustSync: true,
  fromPeer: false,
  owner: 1,
  backup: 2,
  peer: NO_MEMBER,
  client: '198.51.100.7',
  vip: '192.0.2.10',
  backend: '10.1.0.2',
  clientPort: 40000,
  vipPort: 80,
  lifetimeSeconds: 900,
};
const v6: FlowRecord = {
  kind: 'teach',
  family: 6,
  protocol: 17,
  proven: true,
  mustSync: false,
  fromPeer: false,
  owner: 0,
  backup: 2,
  peer: 1,
  client: '2001:db8::7',
  vip: '2001:db8:1::10',
  backend: '10.1.0.3',
  clientPort: 5353,
  vipPort: 53,
  lifetimeSeconds: 60,
};

describe('flow records', () => {
  it('encode to the bytes the native side writes', () => {
    expect(encodeFlowRecord(v4).toString('hex')).toBe(GOLDEN_V4);
    expect(encodeFlowRecord(v6).toString('hex')).toBe(GOLDEN_V6);
  });

  it('decode the bytes the native side writes', () => {
    expect(decodeFlowRecord(Buffer.from(GOLDEN_V4, 'hex'))).toEqual({ ok: true, record: v4 });
    expect(decodeFlowRecord(Buffer.from(GOLDEN_V6, 'hex'))).toEqual({ ok: true, record: v6 });
  });

  it('round-trip many records through one buffer', () => {
    const buf = encodeFlowRecords([v4, v6, v4]);
    expect(buf.length).toBe(3 * FLOW_RECORD_SIZE);
    expect(decodeFlowRecords(buf)).toEqual({ records: [v4, v6, v4], refused: [] });
    expect(decodeFlowRecords(buf.subarray(0, 100)).refused).toEqual([{ index: 1, reason: 'truncated' }]);
  });

  it('allow an end record without a backend, and nothing else', () => {
    const end: FlowRecord = { ...v4, kind: 'end', backend: '', lifetimeSeconds: 0 };
    expect(decodeFlowRecord(encodeFlowRecord(end))).toEqual({ ok: true, record: end });
    expect(decodeFlowRecord(encodeFlowRecord({ ...end, kind: 'new' }))).toEqual({ ok: false, reason: 'bad_address' });
  });

  it('refuse what the native decoder refuses, with the same reasons', () => {
    const good = Buffer.from(GOLDEN_V4, 'hex');
    const withByte = (at: number, value: number): string => {
      const b = Buffer.from(good);
      b[at] = value;
      const r = decodeFlowRecord(b);
      return r.ok ? 'ok' : r.reason;
    };
    expect(decodeFlowRecord(good.subarray(0, 63))).toEqual({ ok: false, reason: 'truncated' });
    expect(withByte(0, 2)).toBe('bad_version');
    expect(withByte(1, 0)).toBe('bad_kind');
    expect(withByte(1, 5)).toBe('bad_kind');
    expect(withByte(2, 5)).toBe('bad_family');
    expect(withByte(3, 1)).toBe('bad_protocol');
    expect(withByte(4, 0x08)).toBe('bad_flags');
    expect(withByte(7, 1)).toBe('bad_member');
    expect(withByte(1, 4)).toBe('bad_member');
    expect(withByte(2, 6)).toBe('bad_address');
    expect(withByte(18, 0xfe)).toBe('bad_address');
  });

  it('refuse to encode what cannot be decoded', () => {
    expect(() => encodeFlowRecord({ ...v4, client: '2001:db8::1' })).toThrow(/client/);
    expect(() => encodeFlowRecord({ ...v4, clientPort: 70000 })).toThrow(/clientPort/);
    expect(() => encodeFlowRecord({ ...v4, owner: 256 })).toThrow(/owner/);
    expect(() => encodeFlowRecord({ ...v4, backend: 'nope' })).toThrow(/backend/);
  });
});
