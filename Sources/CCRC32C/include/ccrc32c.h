#ifndef CCRC32C_H
#define CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli) of `length` bytes, continuing from `crc` (start with 0).
/// Uses the SSE 4.2 crc32 instruction when the CPU has it, else a table.
uint32_t ccrc32c_update(uint32_t crc, const void *data, size_t length);

#endif
