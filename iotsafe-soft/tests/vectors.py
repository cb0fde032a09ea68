import hashlib, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives import hashes

h = lambda b: b.hex()
print("sha256 abc", hashlib.sha256(b"abc").hexdigest())
print("sha256 448", hashlib.sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").hexdigest())
print("hmac 4231.1", hmac.new(b"\x0b"*20, b"Hi There", hashlib.sha256).hexdigest())
print("hmac 4231.2", hmac.new(b"Jefe", b"what do ya want for nothing?", hashlib.sha256).hexdigest())
print("hmac 4231.6", hmac.new(b"\xaa"*131, b"Test Using Larger Than Block-Size Key - Hash Key First", hashlib.sha256).hexdigest())

def hkdf_extract(salt, ikm):
    if not salt: salt = b"\0"*32
    return hmac.new(salt, ikm, hashlib.sha256).digest()
def hkdf_expand(prk, info, L):
    out=b""; t=b""; i=1
    while len(out)<L:
        t=hmac.new(prk, t+info+bytes([i]), hashlib.sha256).digest(); out+=t; i+=1
    return out[:L]
prk = hkdf_extract(bytes(range(13)), b"\x0b"*22)
print("hkdf1 prk", h(prk)); print("hkdf1 okm", h(hkdf_expand(prk, bytes(range(0xf0,0xfa)), 42)))
prk3 = hkdf_extract(b"", b"\x0b"*22)
print("hkdf3 prk", h(prk3)); print("hkdf3 okm", h(hkdf_expand(prk3, b"", 42)))

def expand_label(secret, label, ctx, L):
    full = b"tls13 " + label
    info = L.to_bytes(2,"big") + bytes([len(full)]) + full + bytes([len(ctx)]) + ctx
    return hkdf_expand(secret, info, L)

secret = bytes(range(0x20, 0x40))
msg = b"hello from the SIM's side"
for name, klen, cls in (("aes128gcm",16,AESGCM),("chacha",32,ChaCha20Poly1305)):
    key = expand_label(secret, b"key", b"", klen); iv = expand_label(secret, b"iv", b"", 12)
    print(name, "key", h(key), "iv", h(iv))
    for seq in (0, 7):
        nonce = bytes(a ^ b for a, b in zip(iv, seq.to_bytes(12, "big")))
        inner = msg + b"\x17"
        aad = bytes([0x17,3,3]) + (len(inner)+16).to_bytes(2,"big")
        print(name, "seq", seq, h(cls(key).encrypt(nonce, inner, aad)))

def chacha_ks(key, n):
    c = Cipher(algorithms.ChaCha20(key, b"\0"*16), mode=None).encryptor()
    return c.update(b"\0"*n)
seed = bytes(range(32))
ks = chacha_ks(seed, 96)
print("drbg first64", h(ks[:64]))
print("drbg next16", h(chacha_ks(ks[64:96], 16)))
seed2 = bytes([0xa5])*32
mixed = hashlib.sha256(ks[:32] + seed2).digest()
print("drbg reseed16", h(chacha_ks(mixed, 16)))

# RFC 6979 A.2.5 P-256
d = int("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721", 16)
priv = ec.derive_private_key(d, ec.SECP256R1())
pub = priv.public_key().public_numbers()
print("pub", "%064x" % pub.x, "%064x" % pub.y)
for hn, halg, r, s in (("sha256", hashes.SHA256(), "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716", "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"),
                       ("sha384", hashes.SHA384(), "0EAFEA039B20E9B42309FB1D89E213057CBF973DC0CFC8F129EDDDC800EF7719", "4861F0491E6998B9455193E34E7B0D284DDD7149A74B95B9261F13ABDE940954")):
    der = utils.encode_dss_signature(int(r,16), int(s,16))
    priv.public_key().verify(der, b"sample", ec.ECDSA(halg))
    print("rfc6979", hn, "ok der", h(der))

# A record with TLS 1.3 padding (three zero bytes after the content type), ChaCha20-Poly1305, seq 1.
key = expand_label(secret, b"key", b"", 32); iv = expand_label(secret, b"iv", b"", 12)
nonce = bytes(a ^ b for a, b in zip(iv, (1).to_bytes(12, "big")))
inner = msg + b"\x17" + b"\0\0\0"
aad = bytes([0x17,3,3]) + (len(inner)+16).to_bytes(2,"big")
print("chacha padded seq 1", h(ChaCha20Poly1305(key).encrypt(nonce, inner, aad)))
