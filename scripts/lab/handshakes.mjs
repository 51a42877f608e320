// One HTTP request on each of COUNT connections to a VIP, from fixed client ports FIRST,
// FIRST+1, ... (so that the lab's packet filters can name them). Prints {port: backend} (or
// "error CODE") as JSON once every connection has answered, or after TIMEOUT_MS.
//   node handshakes.mjs VIP FIRST COUNT [TIMEOUT_MS=20000]
import { connect } from 'node:net';

const [vip, firstText, countText, timeoutText = '20000'] = process.argv.slice(2);
const first = Number(firstText);
const count = Number(countText);
if (!vip || !(first > 0) || !(count > 0)) {
  console.error('usage: node handshakes.mjs VIP FIRST COUNT [TIMEOUT_MS]');
  process.exit(2);
}
const answers = {};
let left = count;
const finish = () => {
  process.stdout.write(JSON.stringify(answers) + '\n');
  process.exit(0);
};
const done = (port, answer) => {
  if (answers[port] !== undefined) return;
  answers[port] = answer;
  if (--left === 0) finish();
};
for (let i = 0; i < count; i++) {
  const port = first + i;
  const s = connect({ host: vip, port: 80, localPort: port });
  let buf = '';
  s.on('connect', () => s.write(`GET / HTTP/1.1\r\nHost: ${vip}\r\nConnection: close\r\n\r\n`));
  s.on('data', (d) => {
    buf += d.toString('latin1');
    const m = /backend=(\S+) /.exec(buf);
    if (m) {
      done(port, m[1]);
      s.destroy();
    }
  });
  s.on('error', (e) => done(port, `error ${e.code ?? e}`));
}
setTimeout(finish, Number(timeoutText));
