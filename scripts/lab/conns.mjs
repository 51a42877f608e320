// Long-lived TCP connections to a VIP's HTTP server, all held by this one process: each sends
// a keep-alive request every INTERVAL ms and checks that the same backend answers every time.
// A connection is broken when it is reset or closed, when another backend answers, or when
// it stalls (no answer for STALL ms); `silent` counts the open ones without an answer lately. Commands on standard input, answers as JSON lines:
//   mark      start a new step: count what breaks from now on
//   report    {"step": {broken, reasons}, "open", "silent", "answered", "backends", "total": {broken}}
//   quit
// Usage: node conns.mjs VIP COUNT [INTERVAL_MS=200] [STALL_MS=4000] [PORT=80]
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const [vip, countText, intervalText = '200', stallText = '4000', portText = '80'] = process.argv.slice(2);
const count = Number(countText);
const interval = Number(intervalText);
const stall = Number(stallText);
const port = Number(portText);
if (!vip || !(count > 0)) {
  console.error('usage: node conns.mjs VIP COUNT [INTERVAL_MS] [STALL_MS] [PORT]');
  process.exit(2);
}

const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${vip}\r\n\r\n`);
const conns = [];
let stepBroken = [];
let totalBroken = 0;

function breakConn(c, reason) {
  if (c.broken) return;
  c.broken = reason;
  totalBroken++;
  stepBroken.push({ port: c.port, backend: c.backend, reason });
  clearInterval(c.timer);
  c.socket.destroy();
}

function open(i) {
  const c = { i, backend: undefined, answers: 0, lastAnswer: Date.now(), lastSent: 0, broken: undefined, port: 0, buf: '' };
  c.socket = connect({ host: vip, port });
  c.socket.setNoDelay(true);
  c.socket.on('connect', () => {
    c.port = c.socket.localPort;
    c.lastAnswer = Date.now();
    c.timer = setInterval(() => {
      if (Date.now() - c.lastAnswer > stall) return breakConn(c, 'stalled');
      c.socket.write(request);
    }, interval);
    c.socket.write(request);
  });
  c.socket.on('data', (d) => {
    c.buf += d.toString('latin1');
    let m;
    const re = /backend=(\S+) /g;
    while ((m = re.exec(c.buf)) !== null) {
      const who = m[1];
      if (c.backend === undefined) c.backend = who;
      else if (who !== c.backend) breakConn(c, `answered by ${who}, not ${c.backend}`);
      c.answers++;
      c.lastAnswer = Date.now();
    }
    const cut = c.buf.lastIndexOf('backend=');
    c.buf = cut >= 0 ? c.buf.slice(c.buf.indexOf('\n', cut) + 1) : c.buf.slice(-200);
  });
  c.socket.on('error', (e) => breakConn(c, e.code ?? String(e)));
  c.socket.on('close', () => breakConn(c, 'closed'));
  conns.push(c);
}

// Opened over about a second, so that the handshakes do not come in one burst.
for (let i = 0; i < count; i++) setTimeout(() => open(i), Math.floor((i * 1000) / count));

function report() {
  const backends = {};
  for (const c of conns) if (c.backend && !c.broken) backends[c.backend] = (backends[c.backend] ?? 0) + 1;
  const reasons = {};
  for (const b of stepBroken) {
    const r = b.reason.startsWith('answered by') ? 'other backend' : b.reason;
    reasons[r] = (reasons[r] ?? 0) + 1;
  }
  return {
    step: { broken: stepBroken.length, reasons, ports: stepBroken.slice(0, 20).map((b) => b.port) },
    open: conns.filter((c) => !c.broken).length,
    // Open, but no answer for five intervals: waiting for TCP to retransmit, or stuck.
    silent: conns.filter((c) => !c.broken && Date.now() - c.lastAnswer > 5 * interval).length,
    answered: conns.filter((c) => !c.broken && c.answers > 0).length,
    backends,
    total: { broken: totalBroken, connections: conns.length },
  };
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = line.trim();
  if (cmd === 'mark') {
    stepBroken = [];
    process.stdout.write(JSON.stringify({ marked: true }) + '\n');
  } else if (cmd === 'report') process.stdout.write(JSON.stringify(report()) + '\n');
  else if (cmd === 'quit') process.exit(0);
});
process.stdin.on('end', () => process.exit(0));
