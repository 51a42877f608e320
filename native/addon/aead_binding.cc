#include "aead_binding.h"

#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <memory>

namespace l4mux::addon {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kHeaderBytes = 24;
constexpr size_t kTagBytes = 16;
constexpr size_t kSeqOffset = 16;

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

void nonce_of(const uint8_t* header, uint8_t nonce[12]) {
  std::memset(nonce, 0, 4);
  std::memcpy(nonce + 4, header + kSeqOffset, 8);
}

class Aead : public Napi::ObjectWrap<Aead> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Aead", {InstanceMethod<&Aead::Seal>("seal"), InstanceMethod<&Aead::Open>("open")});
  }

  explicit Aead(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Aead>(info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer() || info[0].As<Napi::Buffer<uint8_t>>().Length() != kKeyBytes) {
      throw Napi::TypeError::New(env, "Aead(key): a 32-byte Buffer expected");
    }
    const uint8_t* key = info[0].As<Napi::Buffer<uint8_t>>().Data();
    enc_.reset(EVP_CIPHER_CTX_new());
    dec_.reset(EVP_CIPHER_CTX_new());
    if (!enc_ || !dec_ || EVP_EncryptInit_ex(enc_.get(), EVP_chacha20_poly1305(), nullptr, key, nullptr) != 1 ||
        EVP_DecryptInit_ex(dec_.get(), EVP_chacha20_poly1305(), nullptr, key, nullptr) != 1) {
      throw Napi::Error::New(env, "Aead: chacha20-poly1305 is not available");
    }
  }

 private:
  Napi::Value Seal(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsNumber()) {
      throw Napi::TypeError::New(env, "seal(datagram, end): a Buffer and a number expected");
    }
    const Napi::Buffer<uint8_t> d = info[0].As<Napi::Buffer<uint8_t>>();
    const double end_d = info[1].As<Napi::Number>().DoubleValue();
    if (!(end_d >= static_cast<double>(kHeaderBytes)) || end_d + static_cast<double>(kTagBytes) > static_cast<double>(d.Length()) ||
        end_d != static_cast<double>(static_cast<int64_t>(end_d))) {
      throw Napi::RangeError::New(env, "seal: end must leave the header before it and the tag after it");
    }
    const auto end = static_cast<size_t>(end_d);
    uint8_t* p = d.Data();
    uint8_t nonce[12];
    nonce_of(p, nonce);
    int n = 0;
    int fin = 0;
    EVP_CIPHER_CTX* c = enc_.get();
    if (EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, nonce) != 1 ||
        EVP_EncryptUpdate(c, nullptr, &n, p, static_cast<int>(kHeaderBytes)) != 1 ||
        EVP_EncryptUpdate(c, p + kHeaderBytes, &n, p + kHeaderBytes, static_cast<int>(end - kHeaderBytes)) != 1 ||
        EVP_EncryptFinal_ex(c, p + kHeaderBytes + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagBytes), p + end) != 1) {
      throw Napi::Error::New(env, "seal: encryption failed");
    }
    return env.Undefined();
  }

  Napi::Value Open(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsBuffer()) {
      throw Napi::TypeError::New(env, "open(datagram, out): two Buffers expected");
    }
    const Napi::Buffer<uint8_t> d = info[0].As<Napi::Buffer<uint8_t>>();
    const Napi::Buffer<uint8_t> out = info[1].As<Napi::Buffer<uint8_t>>();
    if (d.Length() < kHeaderBytes + kTagBytes) return Napi::Boolean::New(env, false);
    const uint8_t* p = d.Data();
    const size_t body = d.Length() - kHeaderBytes - kTagBytes;
    if (out.Length() < body) throw Napi::RangeError::New(env, "open: out is shorter than the payload");
    uint8_t nonce[12];
    nonce_of(p, nonce);
    uint8_t tag[kTagBytes];
    std::memcpy(tag, p + kHeaderBytes + body, kTagBytes);
    int n = 0;
    int fin = 0;
    EVP_CIPHER_CTX* c = dec_.get();
    // An empty Buffer's data pointer may be null: decrypt into a scratch byte then.
    uint8_t scratch[1];
    uint8_t* dst = body > 0 ? out.Data() : scratch;
    const bool ok = EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, nonce) == 1 &&
                    EVP_DecryptUpdate(c, nullptr, &n, p, static_cast<int>(kHeaderBytes)) == 1 &&
                    EVP_DecryptUpdate(c, dst, &n, p + kHeaderBytes, static_cast<int>(body)) == 1 &&
                    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagBytes), tag) == 1 &&
                    EVP_DecryptFinal_ex(c, dst + n, &fin) == 1;
    return Napi::Boolean::New(env, ok);
  }

  Ctx enc_;
  Ctx dec_;
};

}  // namespace

void register_aead(Napi::Env env, Napi::Object exports) { exports.Set("Aead", Aead::Define(env)); }

}  // namespace l4mux::addon
