// Servers of a lab backend, bound to the VIPs: HTTP on port 80 answering with the backend's
// name and the client's address (/big?bytes=N streams N bytes), and a UDP echo on port 53
// that prefixes the backend's name. Runs until SIGTERM.
//   node servers.mjs NAME VIP...
import { createSocket } from 'node:dgram';
import { createServer } from 'node:http';
import { isIPv6 } from 'node:net';

const [name, ...vips] = process.argv.slice(2);
if (!name || vips.length === 0) {
  console.error('usage: node servers.mjs NAME VIP...');
  process.exit(2);
}
const MAX_BIG = 1 << 30;
const closers = [];

function http(vip) {
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
  server.listen({ host: vip, port: 80 });
  closers.push(() => server.close());
}

function echo(vip) {
  const socket = createSocket(isIPv6(vip) ? 'udp6' : 'udp4');
  socket.on('message', (msg, from) => socket.send(Buffer.concat([Buffer.from(`${name}: `), msg]), from.port, from.address));
  socket.bind(53, vip);
  closers.push(() => socket.close());
}

for (const vip of vips) {
  http(vip);
  echo(vip);
}
console.log(`servers of ${name} listening on ${vips.join(', ')}`);
process.on('SIGTERM', () => {
  for (const close of closers) close();
  process.exit(0);
});
