// l4mux capture [--vip V] [--backend B] [--count N] [--seconds S] [--snaplen L] [--sample N] -w F.pcap:
// copies of the frames the running daemon's fast path sees, as received and as sent (after
// encapsulation), written to a pcap file for tcpdump and Wireshark. Bounded in packets and time.
import { Command, InvalidArgumentError } from 'commander';

import { DEFAULT_CONTROL_SOCKET, sendControlStream } from '../../api/client.js';
import { CAPTURE_DEFAULT_SNAPLEN, CAPTURE_MAX_SNAPLEN, CAPTURE_MIN_SNAPLEN } from '../../config/defaults.js';
import { CAPTURE_MAX_PACKETS, CAPTURE_MAX_SECONDS, type CaptureRequest } from '../../api/protocol.js';
import { EXIT_FAILURE, EXIT_OK, processIo, type CommandIo } from '../io.js';
import { PcapWriter } from '../pcap-writer.js';

export const DEFAULT_CAPTURE_COUNT = 100;
export const DEFAULT_CAPTURE_SECONDS = 10;
export const DEFAULT_SNAPLEN = CAPTURE_DEFAULT_SNAPLEN;

export async function runCapture(control: string, request: CaptureRequest, file: string, io: CommandIo = processIo): Promise<number> {
  let writer: PcapWriter;
  try {
    writer = new PcapWriter(file, request.snaplen);
  } catch (e) {
    io.err(`l4mux capture: ${file}: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
  let response;
  let started = false;
  try {
    response = await sendControlStream(
      control,
      { cmd: 'capture', ...request },
      (event) => {
        if (!started) {
          started = true;
          io.err(`capturing up to ${request.count} packets for at most ${request.seconds} s into ${file}`);
        }
        for (const f of event.frames) writer.write(f.seconds, f.nanoseconds, f.originalLength, Buffer.from(f.data, 'base64'));
      },
      10_000,
    );
  } catch (e) {
    io.err(`l4mux capture: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  } finally {
    writer.close();
  }
  if (!response.ok) {
    for (const line of response.errors) io.err(line);
    return EXIT_FAILURE;
  }
  const r = response as { packets: number; frames: number; ringFull: number; stoppedBy: string };
  io.err(`${r.packets} packets (${writer.records} frames, received and sent) written to ${file}; stopped by ${r.stoppedBy}${r.ringFull > 0 ? `; ${r.ringFull} skipped (capture rings full)` : ''}`);
  return EXIT_OK;
}

function integer(lo: number, hi: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < lo || n > hi) throw new InvalidArgumentError(`expected an integer in ${lo}..${hi}`);
    return n;
  };
}

export function captureCommand(io: CommandIo = processIo): Command {
  return new Command('capture')
    .description('write sampled packets the fast path sees, as received and as sent (encapsulated), to a pcap file')
    .requiredOption('-w, --write <file>', 'pcap file to write')
    .option('--vip <vip>', 'only packets to this VIP (name, or address of a single VIP)')
    .option('--backend <address>', 'only packets sent to this backend')
    .option('--count <n>', 'stop after this many packets', integer(1, CAPTURE_MAX_PACKETS), DEFAULT_CAPTURE_COUNT)
    .option('--seconds <s>', 'stop after this many seconds', integer(1, CAPTURE_MAX_SECONDS), DEFAULT_CAPTURE_SECONDS)
    .option('--snaplen <bytes>', 'bytes kept of each frame', integer(CAPTURE_MIN_SNAPLEN, CAPTURE_MAX_SNAPLEN), DEFAULT_SNAPLEN)
    .option('--sample <n>', 'keep one matching packet in n', integer(1, 1_000_000), 1)
    .option('--control <socket>', 'control socket of the daemon', DEFAULT_CONTROL_SOCKET)
    .action(async (options: { write: string; vip?: string; backend?: string; count: number; seconds: number; snaplen: number; sample: number; control: string }) => {
      process.exitCode = await runCapture(
        options.control,
        {
          ...(options.vip !== undefined && { vip: options.vip }),
          ...(options.backend !== undefined && { backend: options.backend }),
          count: options.count,
          seconds: options.seconds,
          snaplen: options.snaplen,
          sampleEvery: options.sample,
        },
        options.write,
        io,
      );
    });
}
