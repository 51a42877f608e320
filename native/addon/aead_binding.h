// Aead: ChaCha20-Poly1305 for the cluster channel's datagrams (src/cluster/wire.ts documents
// the layout), with the key set up once per stream instead of per datagram (Node's
// createCipheriv costs more than sealing a whole batch). It uses the OpenSSL that Node.js
// links and exports to addons; the bytes are those of node:crypto's chacha20-poly1305.
//   new Aead(key: 32-byte Buffer)
//   seal(datagram, end): datagram[0, 24) is the header (associated data, the nonce is 4 zero
//     bytes and header bytes 16..24), [24, end) the payload, encrypted in place, and the
//     16-byte tag is written at [end, end + 16)
//   open(datagram, out) -> true with the payload in out (datagram length - 40 bytes), false
//     when it does not authenticate
#pragma once

#include <napi.h>

namespace l4mux::addon {

void register_aead(Napi::Env env, Napi::Object exports);

}  // namespace l4mux::addon
