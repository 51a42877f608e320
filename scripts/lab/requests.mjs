// One HTTP request per connection to a VIP from each of several client addresses (each a
// separate connection, closed after its answer; the client's addresses must be on its
// interface): which backend answered each. Prints {"address": ["backend2", ...], ...}; a
// request that failed or got no answer within 5 s is "" (the error in "errors").
//   node requests.mjs VIP PORT PER_ADDRESS ADDRESS...
import { request } from 'node:http';

const [vip, portText, perText, ...addresses] = process.argv.slice(2);
const port = Number(portText);
const per = Number(perText);
if (!vip || !(port > 0) || !(per > 0) || addresses.length === 0) {
  console.error('usage: node requests.mjs VIP PORT PER_ADDRESS ADDRESS...');
  process.exit(2);
}

const errors = {};
function once(localAddress) {
  return new Promise((resolve) => {
    const req = request({ host: vip, port, path: '/', localAddress, agent: false, headers: { connection: 'close' }, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(/backend=(\S+)/.exec(body)?.[1] ?? ''));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => {
      errors[e.code ?? e.message] = (errors[e.code ?? e.message] ?? 0) + 1;
      resolve('');
    });
    req.end();
  });
}

// The addresses in parallel; each address's connections one after the other (new source ports).
const out = {};
await Promise.all(addresses.map(async (a) => {
  out[a] = [];
  for (let i = 0; i < per; i++) out[a].push(await once(a));
}));
process.stdout.write(JSON.stringify({ backends: out, errors }) + '\n');
