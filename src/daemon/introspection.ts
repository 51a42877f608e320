// The daemon's side of `l4mux flow` and `l4mux capture`: requests resolved against the running
// config, asked of every served interface's engine, answers merged.
import { isIP } from 'node:net';

import type { CapturedFrame, CapturePackets, CaptureRequest, CaptureResponse, FlowRequest, FlowResponse } from '../api/protocol.js';
import { parseAddress } from '../config/addresses.js';
import { PROTOCOL_NUMBERS, type L4muxConfig } from '../config/index.js';
import type { EngineLike } from '../dataplane/engine.js';
import type { FlowLookupReport } from '../dataplane/introspection.js';
import type { DataplaneCluster } from '../dataplane/types.js';

export interface ServedEngine {
  name: string;
  engine: EngineLike;
}

/** How often a capture's rings are drained: each worker's ring holds 1024 frames. */
export const CAPTURE_DRAIN_MS = 10;

function canonical(address: string): string | undefined {
  const parsed = parseAddress(address);
  return parsed.ok ? parsed.address.canonical : undefined;
}

/** The VIP of a request: by name, else by address (and protocol, and port when given). */
function findVip(config: L4muxConfig, vip: string, protocol: 'tcp' | 'udp', port: number | undefined): L4muxConfig['vips'][number] | string {
  const byName = config.vips.find((v) => v.name === vip);
  if (byName !== undefined) return byName.protocol === protocol ? byName : `VIP ${vip} is ${byName.protocol}, not ${protocol}`;
  const address = isIP(vip) !== 0 ? canonical(vip) : undefined;
  if (address === undefined) return `no VIP named ${JSON.stringify(vip)} (VIPs: ${config.vips.map((v) => v.name).join(', ') || 'none'})`;
  const candidates = config.vips.filter((v) => v.address === address && v.protocol === protocol);
  const exact = candidates.find((v) => port !== undefined && v.port === port) ?? candidates.find((v) => v.port === undefined);
  if (exact !== undefined) return exact;
  if (port === undefined && candidates.length === 1 && candidates[0] !== undefined) return candidates[0];
  if (candidates.length === 0) return `no ${protocol} VIP on ${address}`;
  return `several ${protocol} VIPs on ${address} (${candidates.map((v) => v.port).join(', ')}): give DST:PORT`;
}

/** The flow's owner and backup mux by id, as the fast path computes them (null: no cluster). */
function flowOwners(cluster: DataplaneCluster | undefined, engines: ServedEngine[], flow: { client: string; clientPort: number; vip: string; vipPort: number; protocol: number }): { owner: string | null; backup: string | null } {
  const engine = engines.find((e) => e.engine.owners !== undefined)?.engine;
  if (cluster === undefined || engine?.owners === undefined) return { owner: null, backup: null };
  const o = engine.owners(flow);
  return { owner: cluster.members[o.owner]?.id ?? null, backup: cluster.members[o.backup]?.id ?? null };
}

export async function lookupFlow(config: L4muxConfig, engines: ServedEngine[], request: FlowRequest, cluster?: DataplaneCluster): Promise<FlowResponse> {
  const vip = findVip(config, request.vip, request.protocol, request.dstPort);
  if (typeof vip === 'string') return { ok: false, errors: [vip] };
  const dst = request.dst !== undefined ? canonical(request.dst) : vip.address;
  if (dst !== vip.address) return { ok: false, errors: [`DST ${request.dst} is not the address of VIP ${vip.name} (${vip.address})`] };
  const dstPort = request.dstPort ?? vip.port;
  if (dstPort === undefined) return { ok: false, errors: [`VIP ${vip.name} serves every ${vip.protocol} port: give DST:PORT`] };
  const src = canonical(request.src);
  if (src === undefined) return { ok: false, errors: [`${request.src} is not an IPv4 or IPv6 address`] };
  if (isIP(src) !== isIP(dst)) return { ok: false, errors: [`${src} and VIP ${vip.name} (${dst}) are of different address families`] };
  const query = { protocol: PROTOCOL_NUMBERS[request.protocol], src, srcPort: request.srcPort, dst, dstPort };
  const interfaces: Array<{ name: string } & FlowLookupReport> = [];
  for (const { name, engine } of engines) {
    if (engine.lookupFlow === undefined) return { ok: false, errors: [`${name}: this engine cannot look flows up`] };
    interfaces.push({ name, ...(await engine.lookupFlow(query)) });
  }
  return { ok: true, flow: { vip: vip.name, protocol: request.protocol, src, srcPort: request.srcPort, dst, dstPort }, interfaces, ...flowOwners(cluster, engines, { client: src, clientPort: request.srcPort, vip: dst, vipPort: dstPort, protocol: query.protocol }) };
}

/**
 * Captures on every served interface until `count` packets, `seconds`, the client leaving or
 * the daemon stopping, sending the frames as they are drained.
 */
export async function runCapture(
  config: L4muxConfig,
  engines: ServedEngine[],
  request: CaptureRequest,
  send: (packets: CapturePackets) => void,
  closed: AbortSignal,
  stopping: () => boolean,
): Promise<CaptureResponse> {
  let vipName: string | undefined;
  if (request.vip !== undefined) {
    const vip = config.vips.find((v) => v.name === request.vip) ?? (isIP(request.vip) !== 0 ? config.vips.filter((v) => v.address === canonical(request.vip ?? '')) : undefined);
    if (vip === undefined || (Array.isArray(vip) && vip.length !== 1)) {
      const why = Array.isArray(vip) && vip.length > 1 ? `several VIPs on ${request.vip}: name one (${vip.map((v) => v.name).join(', ')})` : `no VIP ${JSON.stringify(request.vip)}`;
      return { ok: false, errors: [why] };
    }
    vipName = Array.isArray(vip) ? vip[0]?.name : vip.name;
  }
  const backend = request.backend !== undefined ? canonical(request.backend) : undefined;
  if (backend !== undefined && !Object.values(config.pools).some((p) => p.backends.some((b) => b.address === backend))) {
    return { ok: false, errors: [`backend ${backend} is in no pool of the running config`] };
  }
  const options = {
    count: request.count,
    snaplen: request.snaplen,
    sampleEvery: request.sampleEvery,
    ...(vipName !== undefined && { vip: vipName }),
    ...(backend !== undefined && { backend }),
  };
  const started: ServedEngine[] = [];
  const stopAll = (): { packets: number; ringFull: number } => {
    const total = { packets: 0, ringFull: 0 };
    for (const { engine } of started) {
      const s = engine.stopCapture?.();
      total.packets += s?.packets ?? 0;
      total.ringFull += s?.ringFull ?? 0;
    }
    return total;
  };
  try {
    for (const served of engines) {
      if (served.engine.startCapture === undefined) throw new Error(`${served.name}: this engine cannot capture`);
      served.engine.startCapture(options);
      started.push(served);
    }
  } catch (e) {
    stopAll();
    return { ok: false, errors: [e instanceof Error ? e.message : String(e)] };
  }

  send({ event: 'packets', frames: [] });  // started: the client may say so
  const deadline = Date.now() + request.seconds * 1000;
  let packets = 0;
  let frames = 0;
  let stoppedBy: 'count' | 'time' | 'client' | 'daemon' = 'time';
  const drain = (): void => {
    const out: CapturedFrame[] = [];
    for (const { name, engine } of started) {
      for (const r of engine.drainCapture?.() ?? []) {
        if (r.direction === 'received') {
          if (packets >= request.count) continue;  // several interfaces may overshoot together
          packets++;
        }
        out.push({ interface: name, worker: r.worker, packet: r.packet, direction: r.direction, verdict: r.verdict, seconds: r.seconds, nanoseconds: r.nanoseconds, originalLength: r.originalLength, data: r.data.toString('base64') });
      }
    }
    frames += out.length;
    if (out.length > 0) send({ event: 'packets', frames: out });
  };
  let stats = { packets: 0, ringFull: 0 };
  try {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, CAPTURE_DRAIN_MS));
      drain();
      if (packets >= request.count) stoppedBy = 'count';
      else if (closed.aborted) stoppedBy = 'client';
      else if (stopping()) stoppedBy = 'daemon';
      else if (Date.now() >= deadline) stoppedBy = 'time';
      else continue;
      break;
    }
  } finally {
    stats = stopAll();
    drain();  // what the workers wrote between the last drain and the stop (frees the rings)
  }
  return { ok: true, packets, frames, ringFull: stats.ringFull, stoppedBy };
}
