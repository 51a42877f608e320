// l4mux XDP program: steers VIP traffic to the AF_XDP socket of the receive queue and hands
// everything else to the kernel untouched (ARP, ND, BGP, SSH, the host's own traffic).
//
//   Ethernet [+ one 802.1Q / 802.1ad tag] -> IPv4 / IPv6
//     TCP / UDP (IPv4 unfragmented; IPv6 next header straight after the fixed header):
//         `vips` lookup (address, family, protocol, port), then (address, ..., port 0)
//     anything else to an IP address (ICMP, fragments, IPv6 extension headers, TCP/UDP to a
//     port no VIP serves): `vip_addrs` lookup on the destination address
//   match -> bpf_redirect_map(&xsks, rx_queue_index, XDP_PASS): when no socket serves the
//            queue the packet goes to the kernel (counted under no_socket).
//
// A cluster mux also lists (its own address, UDP, the redirect port) in `vips` alone, not in
// `vip_addrs`: packets its peers redirect to it reach the sockets, while the rest of its own
// address's traffic (SSH, BGP, the cluster channel) goes to the kernel.
//
// Every destination address the control plane lists is thus handled by the mux alone: the
// mux pipeline decides (and counts) what happens to a packet for a VIP address, including
// ports it does not serve; the host kernel never sees VIP traffic while a socket is bound.
//
// The map layouts are mirrored in native/core/io/xdp_program.cc (checked against the BTF
// of this object when it is loaded).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define L4MUX_MAX_VIPS 16384
#define L4MUX_MAX_QUEUES 256 /* resized by the loader to the interface's queue count */

struct vip_key {
  __u8 addr[16];  /* IPv4: first 4 bytes, the rest zero */
  __u16 port;     /* network byte order; 0 = every port of the protocol */
  __u8 family;    /* 4 or 6 */
  __u8 proto;     /* IPPROTO_TCP / IPPROTO_UDP */
};

struct vip_addr_key {
  __u8 addr[16];
  __u8 family;
  __u8 pad[3];
};

enum l4mux_xdp_stat {
  STAT_REDIRECT_VIP = 0,   /* TCP/UDP matched (address, protocol, port) */
  STAT_REDIRECT_ADDR = 1,  /* other traffic to a VIP address */
  STAT_PASS = 2,           /* not for a VIP: to the kernel */
  STAT_NO_SOCKET = 3,      /* for a VIP, but no AF_XDP socket on this queue: to the kernel */
  STAT_MALFORMED = 4,      /* IP header truncated or inconsistent: to the kernel */
  STAT_COUNT = 5,
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, L4MUX_MAX_VIPS);
  __type(key, struct vip_key);
  __type(value, __u32);
} vips SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, L4MUX_MAX_VIPS);
  __type(key, struct vip_addr_key);
  __type(value, __u32);
} vip_addrs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, L4MUX_MAX_QUEUES);
  __type(key, __u32);
  __type(value, __u32);
} xsks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} xdp_stats SEC(".maps");

struct vlan_tag {
  __be16 tci;
  __be16 proto;
};

static __always_inline int count(__u32 stat, int action) {
  __u64 *v = bpf_map_lookup_elem(&xdp_stats, &stat);
  if (v) *v += 1;
  return action;
}

static __always_inline int redirect(struct xdp_md *ctx, __u32 stat) {
  const int action = (int)bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
  return count(action == XDP_REDIRECT ? stat : STAT_NO_SOCKET, action);
}

// TCP/UDP with the L4 header at `l4`: the port VIP, else the address-wide decision.
static __always_inline int match_port(struct xdp_md *ctx, struct vip_key *key, void *l4,
                                      void *data_end) {
  if (l4 + 4 <= data_end) {
    key->port = *(__be16 *)(l4 + 2);
    if (bpf_map_lookup_elem(&vips, key)) return redirect(ctx, STAT_REDIRECT_VIP);
    key->port = 0;
    if (bpf_map_lookup_elem(&vips, key)) return redirect(ctx, STAT_REDIRECT_VIP);
  }
  // Truncated L4 header, or a port no VIP serves: still the mux's business when the address
  // is a VIP address (the pipeline drops it under a named reason).
  struct vip_addr_key akey = {};
  __builtin_memcpy(akey.addr, key->addr, sizeof(akey.addr));
  akey.family = key->family;
  if (bpf_map_lookup_elem(&vip_addrs, &akey)) return redirect(ctx, STAT_REDIRECT_ADDR);
  return count(STAT_PASS, XDP_PASS);
}

static __always_inline int match_addr(struct xdp_md *ctx, struct vip_addr_key *akey) {
  if (bpf_map_lookup_elem(&vip_addrs, akey)) return redirect(ctx, STAT_REDIRECT_ADDR);
  return count(STAT_PASS, XDP_PASS);
}

SEC("xdp")
int l4mux_xdp(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;

  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return count(STAT_PASS, XDP_PASS);
  __be16 ethertype = eth->h_proto;
  void *l3 = eth + 1;
  if (ethertype == bpf_htons(ETH_P_8021Q) || ethertype == bpf_htons(ETH_P_8021AD)) {
    struct vlan_tag *tag = l3;
    if ((void *)(tag + 1) > data_end) return count(STAT_PASS, XDP_PASS);
    ethertype = tag->proto;
    l3 = tag + 1;
  }

  if (ethertype == bpf_htons(ETH_P_IP)) {
    struct iphdr *ip = l3;
    if ((void *)(ip + 1) > data_end) return count(STAT_MALFORMED, XDP_PASS);
    if (ip->version != 4 || ip->ihl < 5) return count(STAT_MALFORMED, XDP_PASS);
    const int fragment = (ip->frag_off & bpf_htons(0x3fff)) != 0;  // MF or an offset
    if (!fragment && (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP)) {
      struct vip_key key = {};
      __builtin_memcpy(key.addr, &ip->daddr, 4);
      key.family = 4;
      key.proto = ip->protocol;
      void *l4 = l3 + ip->ihl * 4;  // ihl is 4 bits: a bounded offset
      return match_port(ctx, &key, l4, data_end);
    }
    struct vip_addr_key akey = {};
    __builtin_memcpy(akey.addr, &ip->daddr, 4);
    akey.family = 4;
    return match_addr(ctx, &akey);
  }

  if (ethertype == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = l3;
    if ((void *)(ip6 + 1) > data_end) return count(STAT_MALFORMED, XDP_PASS);
    if (ip6->version != 6) return count(STAT_MALFORMED, XDP_PASS);
    if (ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP) {
      struct vip_key key = {};
      __builtin_memcpy(key.addr, &ip6->daddr, 16);
      key.family = 6;
      key.proto = ip6->nexthdr;
      return match_port(ctx, &key, (void *)(ip6 + 1), data_end);
    }
    // ICMPv6, fragment header, any other extension header: by destination address.
    struct vip_addr_key akey = {};
    __builtin_memcpy(akey.addr, &ip6->daddr, 16);
    akey.family = 6;
    return match_addr(ctx, &akey);
  }

  return count(STAT_PASS, XDP_PASS);  // ARP, LLDP, ...
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
