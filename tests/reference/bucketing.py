#!/usr/bin/env python3
"""Independent reference implementation of bunting's bucketing (pure Python).

Written from the SipHash paper (Aumasson & Bernstein, "SipHash: a fast
short-input PRF", 2012) and the reference C implementation's 128-bit output
mode, plus the key derivation and multiply-shift documented in
core/src/bucket.rs:

1. (k0, k1) = the two 64-bit little-endian halves of SipHash-1-3-128 of the
   salt's UTF-8 bytes under the all-zero key;
2. h = SipHash-1-3-64 of the bucketing key's UTF-8 bytes under (k0, k1);
3. bucket = (h * 100000) >> 64.

It shares no code with the Rust engine, so conformance cases whose outcome
depends on hashing can be written from it rather than from engine output.

Usage:
    bucketing.py SALT KEY           print the bucket of KEY under SALT
    bucketing.py --table            print `salt<TAB>key<TAB>bucket` lines
    bucketing.py --find SALT LO HI [PREFIX [COUNT]]
                                    print keys PREFIX0, PREFIX1, ... whose
                                    bucket lies in [LO, HI)
    bucketing.py --selftest         check the published SipHash vectors
"""

import sys

MASK = (1 << 64) - 1
BUCKETS = 100_000


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & MASK


def _round(v0, v1, v2, v3):
    v0 = (v0 + v1) & MASK
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & MASK
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 = (v0 + v3) & MASK
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 = (v2 + v1) & MASK
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash(k0, k1, msg, c=2, d=4, out128=False):
    """SipHash-c-d of bytes `msg` under the key (k0, k1).

    Returns an int for 64-bit output, or a pair (first, second) of 64-bit
    words for 128-bit output (the 16 output bytes are first.to_le ++
    second.to_le).
    """
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    if out128:
        v1 ^= 0xEE
    n = len(msg)
    end = n - (n % 8)
    for i in range(0, end, 8):
        m = int.from_bytes(msg[i : i + 8], "little")
        v3 ^= m
        for _ in range(c):
            v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0 ^= m
    b = ((n & 0xFF) << 56) | int.from_bytes(msg[end:], "little")
    v3 ^= b
    for _ in range(c):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xEE if out128 else 0xFF
    for _ in range(d):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    first = v0 ^ v1 ^ v2 ^ v3
    if not out128:
        return first
    v1 ^= 0xDD
    for _ in range(d):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return first, v0 ^ v1 ^ v2 ^ v3


def derive_key(salt):
    """(k0, k1) for a salt: SipHash-1-3-128 under the zero key."""
    return siphash(0, 0, salt.encode("utf-8"), c=1, d=3, out128=True)


def bucket_with(key_pair, key):
    k0, k1 = key_pair
    h = siphash(k0, k1, key.encode("utf-8"), c=1, d=3)
    return (h * BUCKETS) >> 64


def bucket(salt, key):
    """The bucket, in 0..100000, of bucketing key `key` under `salt`."""
    return bucket_with(derive_key(salt), key)


def selftest():
    """Checks the implementation against published SipHash-2-4 vectors."""
    k0 = int.from_bytes(bytes(range(0, 8)), "little")
    k1 = int.from_bytes(bytes(range(8, 16)), "little")
    # The paper's Appendix A: key 00..0f, message 00..0e.
    got = siphash(k0, k1, bytes(range(15)))
    assert got == 0xA129CA6149BE45E5, hex(got)
    # Reference implementation vectors (vectors.h): empty message.
    got = siphash(k0, k1, b"")
    assert got.to_bytes(8, "little") == bytes.fromhex("310e0edd47db6f72"), hex(got)
    first, second = siphash(k0, k1, b"", out128=True)
    out = first.to_bytes(8, "little") + second.to_bytes(8, "little")
    assert out == bytes.fromhex("a3817f04ba25a8e66df67214c7550293"), out.hex()
    # Multiply-shift maps the extremes of the hash range to the extreme buckets.
    assert (0 * BUCKETS) >> 64 == 0 and (MASK * BUCKETS) >> 64 == BUCKETS - 1


TABLE_SALTS = [
    "",
    "a",
    "new-checkout",
    "banner",
    "exp-layer",
    "salt-with-exactly-16",
    "ünïcødé-sält",
    "🚀",
    "a-rather-long-salt-that-spans-several-siphash-blocks",
    "12345",
]

TABLE_KEYS = [
    "",
    "u",
    "user-1",
    "user-42",
    "1234567",
    "12345678",
    "123456789",
    "exactly-sixteen!",
    "alice@example.com",
    "Ωmega-ключ-鍵",
    "-7",
    "2.5",
    "a-key-long-enough-to-need-four-siphash-blocks-or-more",
    "sp ace",
    "user-99999",
    "0",
    "null",
    "x" * 63,
    "y" * 64,
    "z" * 65,
]


def table():
    for salt in TABLE_SALTS:
        pair = derive_key(salt)
        for key in TABLE_KEYS:
            yield salt, key, bucket_with(pair, key)


def main(argv):
    selftest()
    if argv == ["--selftest"]:
        print("ok")
    elif argv == ["--table"]:
        for salt, key, b in table():
            print(f"{salt}\t{key}\t{b}")
    elif len(argv) >= 4 and argv[0] == "--find":
        salt, lo, hi = argv[1], int(argv[2]), int(argv[3])
        prefix = argv[4] if len(argv) > 4 else "user-"
        count = int(argv[5]) if len(argv) > 5 else 5
        pair = derive_key(salt)
        i = 0
        while count > 0:
            key = f"{prefix}{i}"
            b = bucket_with(pair, key)
            if lo <= b < hi:
                print(f"{key}\t{b}")
                count -= 1
            i += 1
    elif len(argv) == 2 and not argv[0].startswith("--"):
        print(bucket(argv[0], argv[1]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
