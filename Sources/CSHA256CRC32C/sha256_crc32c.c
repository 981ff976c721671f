// SHA-256 (FIPS 180-4) with the x86 SHA extensions, computing the CRC-32C of each block in the
// same loop.
//
// Why fused: a SHA-NI block is a long dependency chain of `sha256rnds2` (about 40 ns per 64-byte
// block on the machines we seal on), during which the CRC32 unit sits idle. A block's eight
// `crc32q` form a chain of their own of about 24 cycles, on another execution port, so
// out-of-order execution runs them under the SHA rounds for free. Hashing and then checksumming
// the same buffer in two passes instead cost 6 to 10 % of a sealing worker's time.
//
// Only whole 64-byte blocks of input go through the fused loop. Input that does not fill a block
// waits in `state->block`; at the end its CRC is taken on its own, and the padding blocks are
// hashed without CRC (padding is not data).
//
// The functions with SHA-NI code carry `target` attributes, so the rest of the package builds
// without -msha; callers check `tern_sha256_crc32c_available()` (CPUID) first.

#include "csha256crc32c.h"

#include <string.h>

#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>

#define TERN_SHA_ATTR __attribute__((target("sha,ssse3,sse4.1,sse4.2")))

static const uint32_t round_constants[64] __attribute__((aligned(16))) = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u,
    0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu,
    0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,
    0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u,
    0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u,
    0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

// Four rounds. `abef` and `cdgh` hold the working variables in the order the instructions want
// (A in the top lane of `abef`, C in the top lane of `cdgh`). Each `sha256rnds2` does two rounds
// and returns the new ABEF; the old ABEF is then the new CDGH, which is why the two calls swap
// roles and the names are right again after both.
#define TERN_ROUNDS4(msg, i)                                                                   \
    do {                                                                                       \
        __m128i wk = _mm_add_epi32((msg), _mm_load_si128((const __m128i *)&round_constants[i])); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                                          \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));                 \
    } while (0)

// W[i ... i+3] from w16 = W[i-16 ...], w12 = W[i-12 ...], w8 = W[i-8 ...], w4 = W[i-4 ...];
// the result replaces w16, the oldest. `alignr` supplies W[i-7 ... i-4] for the σ-free term.
#define TERN_SCHEDULE(w16, w12, w8, w4)                                                        \
    (w16) = _mm_sha256msg2_epu32(                                                              \
        _mm_add_epi32(_mm_sha256msg1_epu32((w16), (w12)), _mm_alignr_epi8((w4), (w8), 4)), (w4))

// Two of a block's eight CRC steps, interleaved with the rounds in the source. Where they sit
// matters little (the core reorders), but spreading them keeps the CRC chain short between
// issue and use.
#define TERN_CRC2(j)                                                                           \
    do {                                                                                       \
        if (with_crc) {                                                                        \
            crc = (uint32_t)_mm_crc32_u64(crc, load64(p + 16 * (j)));                          \
            crc = (uint32_t)_mm_crc32_u64(crc, load64(p + 16 * (j) + 8));                      \
        }                                                                                      \
    } while (0)

// Compresses `blocks` 64-byte blocks at `p` into `h`, and when `with_crc` feeds the same bytes
// into the raw CRC-32C register `*crc_io`. Inlined into two callers, so `with_crc` is a constant.
TERN_SHA_ATTR __attribute__((always_inline))
static inline void compress(uint32_t h[8], uint32_t *crc_io, const unsigned char *p, size_t blocks, int with_crc) {
    // Byte order: message words are big-endian.
    const __m128i byteswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);

    // h[0...3] = A B C D and h[4...7] = E F G H, lane 0 first; the rounds want F E B A and H G D C.
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); // B A D C
    __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); // H G F E
    __m128i abef = _mm_alignr_epi8(abcd, efgh, 8);   // F E B A
    __m128i cdgh = _mm_blend_epi16(efgh, abcd, 0xF0); // H G D C
    uint32_t crc = with_crc ? *crc_io : 0;

    for (; blocks != 0; blocks--, p += 64) {
        const __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), byteswap);
        __m128i w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), byteswap);
        __m128i w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), byteswap);
        __m128i w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), byteswap);

        TERN_ROUNDS4(w0, 0);
        TERN_CRC2(0);
        TERN_ROUNDS4(w1, 4);
        TERN_ROUNDS4(w2, 8);
        TERN_CRC2(1);
        TERN_ROUNDS4(w3, 12);
        for (int i = 16; i < 64; i += 16) {
            TERN_SCHEDULE(w0, w1, w2, w3);
            TERN_ROUNDS4(w0, i);
            TERN_SCHEDULE(w1, w2, w3, w0);
            TERN_ROUNDS4(w1, i + 4);
            if (i == 16) {
                TERN_CRC2(2);
            } else if (i == 32) {
                TERN_CRC2(3);
            }
            TERN_SCHEDULE(w2, w3, w0, w1);
            TERN_ROUNDS4(w2, i + 8);
            TERN_SCHEDULE(w3, w0, w1, w2);
            TERN_ROUNDS4(w3, i + 12);
        }

        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }

    // Back to A B C D and E F G H.
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);  // A B E F
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);  // G H C D
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xF0)); // A B C D
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));    // E F G H
    if (with_crc) {
        *crc_io = crc;
    }
}

TERN_SHA_ATTR
static void compress_with_crc(uint32_t h[8], uint32_t *crc, const unsigned char *p, size_t blocks) {
    compress(h, crc, p, blocks, 1);
}

TERN_SHA_ATTR
static void compress_only(uint32_t h[8], const unsigned char *p, size_t blocks) {
    compress(h, NULL, p, blocks, 0);
}

__attribute__((target("sse4.2")))
static uint32_t crc_bytes(uint32_t crc, const unsigned char *p, size_t len) {
    for (; len >= 8; len -= 8, p += 8) {
        crc = (uint32_t)_mm_crc32_u64(crc, load64(p));
    }
    for (; len != 0; len--) {
        crc = _mm_crc32_u8(crc, *p++);
    }
    return crc;
}

static int detect(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    const unsigned int ssse3 = 1u << 9, sse41 = 1u << 19, sse42 = 1u << 20;
    if ((ecx & (ssse3 | sse41 | sse42)) != (ssse3 | sse41 | sse42)) {
        return 0;
    }
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    return (ebx >> 29) & 1; // CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29]
}

int tern_sha256_crc32c_available(void) {
    // CPUID traps to the hypervisor in a VM, so ask once: 0 unknown, 1 no, 2 yes. Racing
    // first callers all compute the same answer.
    static int cached = 0;
    int known = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (known == 0) {
        known = detect() ? 2 : 1;
        __atomic_store_n(&cached, known, __ATOMIC_RELAXED);
    }
    return known == 2;
}

#else

// No fused path on this architecture: callers see `available() == 0` and never get here.
static void compress_with_crc(uint32_t h[8], uint32_t *crc, const unsigned char *p, size_t blocks) {
    (void)h, (void)crc, (void)p, (void)blocks;
    __builtin_trap();
}

static void compress_only(uint32_t h[8], const unsigned char *p, size_t blocks) {
    (void)h, (void)p, (void)blocks;
    __builtin_trap();
}

static uint32_t crc_bytes(uint32_t crc, const unsigned char *p, size_t len) {
    (void)p, (void)len;
    __builtin_trap();
    return crc;
}

int tern_sha256_crc32c_available(void) {
    return 0;
}

#endif

void tern_sha256_crc32c_init(tern_sha256_crc32c *state) {
    static const uint32_t initial[8] = {
        0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au, 0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
    };
    memset(state, 0, sizeof *state);
    memcpy(state->h, initial, sizeof initial);
    state->crc = 0xFFFFFFFFu;
}

void tern_sha256_crc32c_update(tern_sha256_crc32c *state, const void *data, size_t len) {
    if (len == 0) {
        return;
    }
    const unsigned char *p = (const unsigned char *)data;
    state->length += len;
    if (state->buffered != 0) {
        size_t take = 64 - state->buffered;
        if (take > len) {
            take = len;
        }
        memcpy(state->block + state->buffered, p, take);
        state->buffered += (uint32_t)take;
        p += take;
        len -= take;
        if (state->buffered < 64) {
            return;
        }
        compress_with_crc(state->h, &state->crc, state->block, 1);
        state->buffered = 0;
    }
    if (len >= 64) {
        compress_with_crc(state->h, &state->crc, p, len / 64);
        p += len & ~(size_t)63;
        len &= 63;
    }
    if (len != 0) {
        memcpy(state->block, p, len);
        state->buffered = (uint32_t)len;
    }
}

uint32_t tern_sha256_crc32c_final(tern_sha256_crc32c *state, unsigned char digest[32]) {
    size_t used = state->buffered;
    uint32_t crc = crc_bytes(state->crc, state->block, used) ^ 0xFFFFFFFFu;

    // Padding: 0x80, zeros up to 56 mod 64, then the message length in bits, big-endian.
    unsigned char tail[128];
    memcpy(tail, state->block, used);
    tail[used] = 0x80;
    size_t total = used + 1 + 8 <= 64 ? 64 : 128;
    memset(tail + used + 1, 0, total - 8 - (used + 1));
    uint64_t bits = state->length * 8;
    for (int i = 0; i < 8; i++) {
        tail[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    }
    compress_only(state->h, tail, total / 64);

    for (int i = 0; i < 8; i++) {
        uint32_t word = state->h[i];
        digest[4 * i + 0] = (unsigned char)(word >> 24);
        digest[4 * i + 1] = (unsigned char)(word >> 16);
        digest[4 * i + 2] = (unsigned char)(word >> 8);
        digest[4 * i + 3] = (unsigned char)word;
    }
    memset(state, 0, sizeof *state);
    return crc;
}
