#ifndef TERN_CCRC32C_H
#define TERN_CCRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, init and xorout 0xFFFFFFFF).
///
/// `crc` is the finalized CRC of everything fed so far (0 for nothing), so
/// `tern_crc32c_update(tern_crc32c_update(0, a, la), b, lb)` equals the CRC of `a || b`.
/// Uses the CPU's CRC32C instruction when `tern_crc32c_hardware()` is non-zero.
/// `buf` may be NULL when `len` is 0.
uint32_t tern_crc32c_update(uint32_t crc, const void *buf, size_t len);

/// Same contract as `tern_crc32c_update`, always using the portable slicing-by-8 tables.
uint32_t tern_crc32c_update_portable(uint32_t crc, const void *buf, size_t len);

/// CRC of `A || B` given `crcA = crc(A)`, `crcB = crc(B)` and `lenB = len(B)` in bytes.
/// O(log lenB) time, no data access.
uint32_t tern_crc32c_combine(uint32_t crcA, uint32_t crcB, uint64_t lenB);

/// Non-zero when `tern_crc32c_update` uses a hardware CRC32C instruction
/// (SSE4.2 on x86-64, the ARMv8 CRC extension on arm64).
int tern_crc32c_hardware(void);

#ifdef __cplusplus
}
#endif

#endif
