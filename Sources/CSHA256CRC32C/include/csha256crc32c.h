#ifndef TERN_CSHA256CRC32C_H
#define TERN_CSHA256CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Running state of SHA-256 and CRC-32C over the same bytes, computed in one pass.
///
/// Treat the fields as private; the struct is public only so callers can hold it by value.
typedef struct tern_sha256_crc32c {
    uint32_t h[8];           ///< SHA-256 chaining value, H0 ... H7.
    uint64_t length;         ///< Bytes fed so far.
    uint32_t crc;            ///< Raw CRC-32C register of the whole blocks hashed (finalized ^ 0xFFFFFFFF).
    uint32_t buffered;       ///< Bytes waiting in `block` (0 ... 63); not yet in `h` or `crc`.
    unsigned char block[64]; ///< The partial block.
} tern_sha256_crc32c;

/// Non-zero when the CPU has what the fused path needs: the SHA extensions (SHA-NI), SSSE3,
/// SSE4.1 and SSE4.2. Always 0 on other architectures. Checked with CPUID once, then cached.
int tern_sha256_crc32c_available(void);

/// Starts an empty hash and checksum. Call only when `tern_sha256_crc32c_available()` is non-zero.
void tern_sha256_crc32c_init(tern_sha256_crc32c *state);

/// Feeds `len` bytes (`data` may be NULL when `len` is 0). Any length and alignment.
void tern_sha256_crc32c_update(tern_sha256_crc32c *state, const void *data, size_t len);

/// Writes the 32-byte SHA-256 digest to `digest` and returns the finalized CRC-32C (Castagnoli,
/// as `tern_crc32c_update(0, data, len)` computes it). The state is spent afterwards.
uint32_t tern_sha256_crc32c_final(tern_sha256_crc32c *state, unsigned char digest[32]);

#ifdef __cplusplus
}
#endif

#endif
