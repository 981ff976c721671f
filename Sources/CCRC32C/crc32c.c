// CRC-32C (Castagnoli) with a hardware path and a portable slicing-by-8 fallback.
//
// Conventions: the public functions take and return the *finalized* CRC (bits inverted on the
// way in and out), so a running value starts at 0 and chains across calls. Internally the "raw"
// register (finalized ^ 0xFFFFFFFF) is what the tables and the instruction operate on.
//
// Hardware path: for long buffers, three independent streams are run side by side so the
// instruction's three-cycle latency is hidden (one issue per cycle), then merged with the
// linearity of the raw CRC: raw(A || B) = zeros_|B|(raw(A)) ^ raw0(B), where zeros_n feeds n
// zero bytes and raw0(B) is B's CRC started from a zero register. zeros_n for the two fixed
// block sizes is precomputed as four byte-indexed tables (crc32c_tables.h).

#include "ccrc32c.h"
#include "crc32c_tables.h"

#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define TERN_CRC32C_HW_X86 1
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#define TERN_CRC32C_HW_ARM 1
#endif

// MARK: - Portable (slicing-by-8)

static inline uint32_t load_le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint32_t crc32c_raw_portable(uint32_t crc, const unsigned char *p, size_t len) {
    const uint32_t (*t)[256] = tern_crc32c_slice8;
    while (len != 0 && ((uintptr_t)p & 7) != 0) {
        crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
        len--;
    }
    while (len >= 8) {
        uint32_t lo = load_le32(p) ^ crc;
        uint32_t hi = load_le32(p + 4);
        crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
              t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len != 0) {
        crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
        len--;
    }
    return crc;
}

uint32_t tern_crc32c_update_portable(uint32_t crc, const void *buf, size_t len) {
    if (len == 0) {
        return crc;
    }
    return crc32c_raw_portable(crc ^ 0xFFFFFFFFu, (const unsigned char *)buf, len) ^ 0xFFFFFFFFu;
}

// MARK: - Hardware

#if defined(TERN_CRC32C_HW_X86) || defined(TERN_CRC32C_HW_ARM)

static inline uint32_t crc32c_shift(const uint32_t zeros[4][256], uint32_t crc) {
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^
           zeros[3][crc >> 24];
}

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#if defined(TERN_CRC32C_HW_X86)
#define TERN_HW_ATTR __attribute__((target("sse4.2")))
#define TERN_CRC_U8(c, b) ((uint32_t)_mm_crc32_u8((c), (b)))
#define TERN_CRC_U64(c, v) ((uint32_t)_mm_crc32_u64((c), (v)))
#else
#define TERN_HW_ATTR
#define TERN_CRC_U8(c, b) __crc32cb((c), (b))
#define TERN_CRC_U64(c, v) __crc32cd((c), (v))
#endif

// Three streams of `block` bytes each, `rounds` times; returns the raw register. Requires
// len >= 3 * block on entry for each round. The compiler unrolls the inner loop.
#define TERN_CRC32C_INTERLEAVE(block, zeros)                                            \
    while (len >= 3 * (size_t)(block)) {                                                \
        uint32_t crc1 = 0, crc2 = 0;                                                    \
        const unsigned char *end = p + (block);                                         \
        do {                                                                            \
            crc0 = TERN_CRC_U64(crc0, load64(p));                                       \
            crc1 = TERN_CRC_U64(crc1, load64(p + (block)));                             \
            crc2 = TERN_CRC_U64(crc2, load64(p + 2 * (block)));                         \
            p += 8;                                                                     \
        } while (p < end);                                                              \
        crc0 = crc32c_shift((zeros), crc0) ^ crc1;                                      \
        crc0 = crc32c_shift((zeros), crc0) ^ crc2;                                      \
        p += 2 * (size_t)(block);                                                       \
        len -= 3 * (size_t)(block);                                                     \
    }

TERN_HW_ATTR
static uint32_t crc32c_raw_hardware(uint32_t crc0, const unsigned char *p, size_t len) {
    while (len != 0 && ((uintptr_t)p & 7) != 0) {
        crc0 = TERN_CRC_U8(crc0, *p++);
        len--;
    }
    TERN_CRC32C_INTERLEAVE(TERN_CRC32C_LONG, tern_crc32c_long_shift)
    TERN_CRC32C_INTERLEAVE(TERN_CRC32C_SHORT, tern_crc32c_short_shift)
    while (len >= 8) {
        crc0 = TERN_CRC_U64(crc0, load64(p));
        p += 8;
        len -= 8;
    }
    while (len != 0) {
        crc0 = TERN_CRC_U8(crc0, *p++);
        len--;
    }
    return crc0;
}

#endif

int tern_crc32c_hardware(void) {
#if defined(TERN_CRC32C_HW_X86)
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
#elif defined(TERN_CRC32C_HW_ARM)
    return 1;
#else
    return 0;
#endif
}

uint32_t tern_crc32c_update(uint32_t crc, const void *buf, size_t len) {
    if (len == 0) {
        return crc;
    }
#if defined(TERN_CRC32C_HW_X86) || defined(TERN_CRC32C_HW_ARM)
    if (tern_crc32c_hardware()) {
        return crc32c_raw_hardware(crc ^ 0xFFFFFFFFu, (const unsigned char *)buf, len) ^ 0xFFFFFFFFu;
    }
#endif
    return crc32c_raw_portable(crc ^ 0xFFFFFFFFu, (const unsigned char *)buf, len) ^ 0xFFFFFFFFu;
}

// MARK: - Combine (GF(2) polynomial arithmetic, as in zlib's crc32_combine)

// a * b mod P, both reflected (bit 31 is x^0).
static uint32_t multmodp(uint32_t a, uint32_t b) {
    uint32_t m = (uint32_t)1 << 31;
    uint32_t p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) {
                break;
            }
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ 0x82F63B78u : b >> 1;
    }
    return p;
}

// x^(n * 2^k) mod P. The CRC-32C polynomial is reducible, so x^(2^k) does not cycle with
// period 32; the table covers every k reachable from a 64-bit byte count (k = 3 ... 66).
static uint32_t x2nmodp(uint64_t n, unsigned k) {
    uint32_t p = (uint32_t)1 << 31; // x^0
    while (n != 0) {
        if (n & 1) {
            p = multmodp(tern_crc32c_x2n[k], p);
        }
        n >>= 1;
        k++;
    }
    return p;
}

uint32_t tern_crc32c_combine(uint32_t crcA, uint32_t crcB, uint64_t lenB) {
    return multmodp(x2nmodp(lenB, 3), crcA) ^ crcB;
}
