// Independent decoding of captures with tshark (Wireshark), a decoder this project did not
// write. Checksum validation is switched on for every layer.
import { execFileSync } from 'node:child_process';

const CHECK_ALL = [
  '-o', 'ip.check_checksum:TRUE',
  '-o', 'tcp.check_checksum:TRUE',
  '-o', 'udp.check_checksum:TRUE',
  '-o', 'ip.defragment:FALSE',
  '-o', 'ipv6.defragment:FALSE',
];

/** One row per frame; each cell holds every occurrence of the field, outer first, joined by '|'. */
export function tsharkFields(pcap: string, fields: string[], extra: string[] = []): string[][] {
  const args = ['-r', pcap, '-n', ...CHECK_ALL, ...extra, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=|'];
  for (const f of fields) args.push('-e', f);
  const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split('\t'));
}

/** tshark's one-line summary of each frame, with expert info on malformed or bad checksums. */
export function tsharkExpert(pcap: string): string {
  return execFileSync('tshark', ['-r', pcap, '-n', ...CHECK_ALL, '-z', 'expert,warn', '-q'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}
