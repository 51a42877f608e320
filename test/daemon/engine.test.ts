// The typed Engine wrapper over a stand-in for the addon's native class.
import { describe, expect, it } from 'vitest';

import { Engine, parseIoMode, requestedIoMode, type EngineModule, type EngineOptions } from '../../src/dataplane/engine.js';
import type { DataplaneConfig } from '../../src/dataplane/types.js';

const options: EngineOptions = {
  interface: 'eth0',
  workers: 2,
  cpus: [0, 1],
  io: 'auto',
  xdpMode: 'auto',
  conntrack: { maxFlows: 1024, timeouts: { tcpSynSeconds: 1, tcpEstablishedSeconds: 2, tcpClosingSeconds: 3, udpSeconds: 4, otherSeconds: 5 } },
};

function nativeModule(calls: unknown[], extra: Record<string, unknown> = {}): EngineModule {
  class NativeEngine {
    constructor(o: EngineOptions) {
      calls.push(['new', o]);
      Object.assign(this, extra);
    }
    setConfig(c: DataplaneConfig): void {
      calls.push(['setConfig', c.seed]);
      if (c.seed === 'bad') throw new TypeError('config.seed: not a 64-bit number');
    }
    start(): void {
      calls.push(['start']);
    }
    stop(): Promise<void> {
      calls.push(['stop']);
      return Promise.resolve();
    }
    counters(): unknown {
      return { rx: 1, tx: 1, passed: 0, dropped: 0, drops: {}, vips: [], backends: [], conntrack: { inserts: 0, evictions: 0, expiredReused: 0, capacity: 1024 }, io: { rxPackets: 5 } };
    }
  }
  return { Engine: NativeEngine as unknown as EngineModule['Engine'] };
}

describe('Engine', () => {
  it('passes options, configs and start/stop to the native engine (sync or async)', async () => {
    const calls: unknown[] = [];
    const engine = new Engine(options, nativeModule(calls));
    engine.setConfig({ seed: '0x1' } as DataplaneConfig);
    await engine.start();
    await engine.stop();
    expect(calls).toEqual([['new', options], ['setConfig', '0x1'], ['start'], ['stop']]);
    expect(engine.options).toEqual(options);
    expect(Object.isFrozen(engine.options)).toBe(true);
  });

  it('lets setConfig errors through (nothing applied)', () => {
    const engine = new Engine(options, nativeModule([]));
    expect(() => engine.setConfig({ seed: 'bad' } as DataplaneConfig)).toThrow('config.seed: not a 64-bit number');
  });

  it('fills in I/O counters the addon leaves out', () => {
    const engine = new Engine(options, nativeModule([]));
    expect(engine.counters().io).toEqual({ rxPackets: 5, rxKernelDrops: 0, rxOversized: 0, rxIgnored: 0, txPackets: 0, txErrors: 0, txRingFull: 0 });
  });

  it('reports the I/O mode from ioMode() when the addon has it, else from the options', () => {
    const reported = new Engine(options, nativeModule([], { ioMode: () => ({ mode: 'af_packet', reason: 'AF_XDP: bpf() refused (EPERM)' }) }));
    expect(reported.ioMode()).toEqual({ mode: 'af_packet', reason: 'AF_XDP: bpf() refused (EPERM)', reported: true });
    expect(new Engine(options, nativeModule([])).ioMode()).toEqual({ mode: 'unknown', reason: 'auto (this addon does not report its choice)', reported: false });
    expect(new Engine({ ...options, io: 'af_xdp', xdpMode: 'native' }, nativeModule([])).ioMode()).toEqual({ mode: 'af_xdp', xdpMode: 'native', reason: 'requested', reported: false });
  });

  it('says clearly when the addon has no Engine', () => {
    expect(() => new Engine(options, {})).toThrow(/this build of the l4mux addon has no Engine/);
  });
});

describe('parseIoMode', () => {
  it('accepts a mode name, or an object with mode (or io), xdpMode and reason', () => {
    expect(parseIoMode('af_xdp', { io: 'auto' })).toEqual({ mode: 'af_xdp', reason: 'chosen by auto', reported: true });
    expect(parseIoMode({ io: 'af_xdp', xdpMode: 'generic', reason: 'native refused' }, { io: 'auto' })).toEqual({ mode: 'af_xdp', xdpMode: 'generic', reason: 'native refused', reported: true });
    expect(parseIoMode({ mode: 'af_packet', xdpMode: 'generic' }, { io: 'af_packet' })).toEqual({ mode: 'af_packet', reason: 'requested', reported: true });
    expect(parseIoMode(42, { io: 'af_packet' })).toEqual({ mode: 'af_packet', reason: 'the addon reported 42, which is not an I/O mode', reported: false });
    expect(requestedIoMode({ io: 'af_xdp', xdpMode: 'auto' })).toEqual({ mode: 'af_xdp', reason: 'requested', reported: false });
  });
});
