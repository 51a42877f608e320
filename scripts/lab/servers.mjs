// Servers of a lab backend, bound to the VIPs: HTTP on ports 80 and 8080 answering with the backend's
// name and the client's address (/big?bytes=N streams N bytes), and a UDP echo on port 53
// that prefixes the backend's name. Also a health endpoint for the muxes' checks on the
// backend's own addresses, port 9090: GET /healthz answers 200 with the backend's load
// report in the x-weight header (the number in $LAB_STATE/NAME.weight when that file exists).
// With $LAB_STATE, the process id goes to $LAB_STATE/NAME.pid.
// Runs until SIGTERM.
//   node servers.mjs NAME VIP...
import { createSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { isIPv6 } from 'node:net';

const [name, ...vips] = process.argv.slice(2);
if (!name || vips.length === 0) {
  console.error('usage: node servers.mjs NAME VIP...');
  process.exit(2);
}
const MAX_BIG = 1 << 30;
const closers = [];

function http(vip, port) {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://vip');
    const client = req.socket.remoteAddress;
    if (url.pathname === '/big') {
      const bytes = Math.min(Number(url.searchParams.get('bytes') ?? 0) || 0, MAX_BIG);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes, 'x-backend': name });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let left = bytes;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': name });
    res.end(`backend=${name} vip=${vip} client=${client}\n`);
  });
  server.listen({ host: vip, port });
  closers.push(() => server.close());
}

function echo(vip) {
  const socket = createSocket(isIPv6(vip) ? 'udp6' : 'udp4');
  socket.on('message', (msg, from) => socket.send(Buffer.concat([Buffer.from(`${name}: `), msg]), from.port, from.address));
  socket.bind(53, vip);
  closers.push(() => socket.close());
}

function health() {
  const weightFile = process.env.LAB_STATE ? `${process.env.LAB_STATE}/${name}.weight` : undefined;
  const server = createServer((req, res) => {
    let weight;
    try {
      weight = weightFile && readFileSync(weightFile, 'utf8').trim();
    } catch {
      weight = undefined;
    }
    res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'text/plain', ...(weight && { 'x-weight': weight }) });
    res.end(`${name} ok\n`);
  });
  server.listen({ host: '::', port: 9090 });  // dual stack: every address of the backend
  closers.push(() => server.close());
}

for (const vip of vips) {
  http(vip, 80);
  http(vip, 8080);  // the lab's persistent VIP
  echo(vip);
}
health();
// Tests stop and restart a backend's service through this.
if (process.env.LAB_STATE) writeFileSync(`${process.env.LAB_STATE}/${name}.pid`, String(process.pid));
console.log(`servers of ${name} listening on ${vips.join(', ')}`);
process.on('SIGTERM', () => {
  for (const close of closers) close();
  process.exit(0);
});
