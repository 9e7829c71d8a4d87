/*
 * The two pure functions the host side re-implements (guest/builder/fnv1a64.ts has
 * fnv1a64; no host code recomputes the memory pattern, only the guest verifies it).
 */
#ifndef MIX_H
#define MIX_H

#include <stddef.h>
#include <stdint.h>

#define GOLDEN64 0x9e3779b97f4a7c15ull

/* splitmix64 finalizer: a bijection on 64-bit words with full avalanche. */
static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Per-(page, generation) base; each word then costs one mix64. */
static inline uint64_t page_base(uint64_t seed, uint64_t page, uint32_t gen) {
  return mix64(mix64(seed + page * GOLDEN64) ^ ((uint64_t)gen * 0xd1b54a32d192ed03ull));
}

static inline uint64_t page_word(uint64_t base, uint64_t word) {
  return mix64(base + word * GOLDEN64);
}

#define FNV64_OFFSET 0xcbf29ce484222325ull
#define FNV64_PRIME 0x100000001b3ull

/* FNV-1a 64 over bytes, continuing from h (start with FNV64_OFFSET). */
static inline uint64_t fnv1a64(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= FNV64_PRIME;
  }
  return h;
}

#endif
