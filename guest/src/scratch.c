/*
 * Scratch memory: `scratch <mib>` maps mib MiB of anonymous memory, writes unique,
 * incompressible words to every page and unmaps it again. The guest kernel gets the pages
 * back as free memory that still holds those bytes: what a save must copy unless the guest
 * hints its free pages to QEMU (virtio-balloon free page hinting). Nothing is kept, so
 * nothing is verified later; the pages are free.
 */
#include <stdint.h>
#include <sys/mman.h>

#include "mix.h"
#include "swagent.h"

static uint64_t scratch_words; /* atomic: words written so far, so every call writes new bytes */

uint64_t scratch_dirty(uint64_t mib) {
  uint64_t words = mib * PAGES_PER_MIB * PAGE_WORDS;
  int prot = PROT_READ | PROT_WRITE;
  uint64_t *mem = mmap(NULL, words * 8u, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 0;
  uint64_t first = __atomic_fetch_add(&scratch_words, words, __ATOMIC_RELAXED);
  for (uint64_t i = 0; i < words; i++) mem[i] = mix64(first + i) | 1u; /* never a zero page */
  munmap(mem, words * 8u);
  return mib;
}
