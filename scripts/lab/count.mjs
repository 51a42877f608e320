// Counts packets matching a BPF filter on an interface for a while, with the `pcap` package
// (libpcap). Prints {"interface", "filter", "packets"} as JSON. Run inside a namespace:
//   ip netns exec NS node scripts/lab/count.mjs IFACE SECONDS 'FILTER'
import pcap from 'pcap';

const [iface, seconds, filter] = process.argv.slice(2);
if (!iface || !seconds || filter === undefined) {
  console.error("usage: node count.mjs IFACE SECONDS 'FILTER'");
  process.exit(2);
}
// buffer_timeout 0: deliver packets as they come (libpcap otherwise batches them).
const session = pcap.createSession(iface, { filter, buffer_timeout: 0 });
let packets = 0;
session.on('packet', () => {
  packets += 1;
});
console.error('ready');
setTimeout(() => {
  session.close();
  console.log(JSON.stringify({ interface: iface, filter, packets }));
  process.exit(0);
}, Number(seconds) * 1000);
