/*
 * Memory workload: mem_mib MiB of anonymous memory holding a pattern derived from
 * (seed, page, generation, word). A writer thread keeps rewriting a scattered hot subset at
 * most hot_rate pages per second, so precopy migration can converge.
 * Invariant: gen[] and page contents change together, only under mem_lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mix.h"
#include "swagent.h"

#define FILL_CHUNK_PAGES 256u  /* lock granularity while filling: 1 MiB */
#define WRITER_TICK_MS 10u     /* writer wakes 100 times per second */
#define WRITER_LATE_MS_MAX 100 /* after a pause (e.g. VM stopped) do not burst to catch up */

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *mem;           /* pages * PAGE_WORDS words */
static uint32_t *gen;           /* generation of each page */
static uint32_t *hot;           /* indices of the hot pages */
static uint64_t pages, hot_n, filled, seed, hot_rate;
static uint64_t rewrites;       /* atomic */
static uint64_t sweep_ms;
static uint64_t sweeps;         /* atomic: completed sweeps */

static void write_page(uint64_t page) {
  uint64_t base = page_base(seed, page, gen[page]);
  uint64_t *w = mem + page * PAGE_WORDS;
  for (uint64_t i = 0; i < PAGE_WORDS; i++) w[i] = page_word(base, i);
}

static int page_ok(uint64_t page) {
  uint64_t base = page_base(seed, page, gen[page]);
  const uint64_t *w = mem + page * PAGE_WORDS;
  for (uint64_t i = 0; i < PAGE_WORDS; i++)
    if (w[i] != page_word(base, i)) return 0;
  return 1;
}

static uint64_t gcd(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* Hot pages are the first hot_n of the permutation i -> i * stride mod pages: spread evenly. */
static void choose_hot_pages(uint64_t hot_pct) {
  hot_n = pages * hot_pct / 100u;
  if (hot_pct > 0 && hot_n == 0) hot_n = 1;
  uint64_t stride = (pages * 618u / 1000u) | 1u;
  while (gcd(stride, pages) != 1) stride += 2;
  for (uint64_t i = 0; i < hot_n; i++) hot[i] = (uint32_t)((i * stride) % pages);
}

int mem_init(const struct params *p) {
  pages = p->mem_mib * PAGES_PER_MIB;
  seed = p->seed;
  hot_rate = p->hot_rate;
  sweep_ms = p->sweep_ms;
  size_t bytes = pages * PAGE_BYTES;
  mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  gen = mmap(NULL, pages * 4u, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  hot = mmap(NULL, pages * 4u, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED || gen == MAP_FAILED || hot == MAP_FAILED) {
    log_line("cannot map %llu MiB: %s; boot with more memory or a smaller snapwake.mem_mib",
             (unsigned long long)p->mem_mib, strerror(errno));
    return -1;
  }
  choose_hot_pages(p->hot_pct);
  return 0;
}

void mem_fill(void) {
  for (uint64_t start = 0; start < pages; start += FILL_CHUNK_PAGES) {
    uint64_t end = start + FILL_CHUNK_PAGES < pages ? start + FILL_CHUNK_PAGES : pages;
    pthread_mutex_lock(&mem_lock);
    for (uint64_t page = start; page < end; page++) write_page(page);
    __atomic_store_n(&filled, end, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&mem_lock);
  }
}

static void add_ms(struct timespec *t, uint64_t ms) {
  t->tv_nsec += (long)(ms * 1000000u);
  while (t->tv_nsec >= 1000000000L) {
    t->tv_nsec -= 1000000000L;
    t->tv_sec++;
  }
}

static int64_t late_ms(const struct timespec *due) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)(now.tv_sec - due->tv_sec) * 1000 + (now.tv_nsec - due->tv_nsec) / 1000000;
}

/* Rewrites hot pages round-robin; budget accrues in milli-pages so low rates still work. */
static void *writer_main(void *arg) {
  (void)arg;
  struct timespec due;
  clock_gettime(CLOCK_MONOTONIC, &due);
  uint64_t cursor = 0, budget_milli = 0;
  for (;;) {
    add_ms(&due, WRITER_TICK_MS);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR) {
    }
    if (late_ms(&due) > WRITER_LATE_MS_MAX) clock_gettime(CLOCK_MONOTONIC, &due);
    budget_milli += hot_rate * WRITER_TICK_MS;
    uint64_t n = budget_milli / 1000u;
    budget_milli %= 1000u;
    pthread_mutex_lock(&mem_lock);
    for (uint64_t k = 0; k < n; k++) {
      uint64_t page = hot[cursor];
      cursor = cursor + 1 == hot_n ? 0 : cursor + 1;
      gen[page]++;
      write_page(page);
    }
    pthread_mutex_unlock(&mem_lock);
    __atomic_add_fetch(&rewrites, n, __ATOMIC_RELAXED);
  }
  return NULL;
}

void mem_start_writer(void) {
  if (hot_n == 0 || hot_rate == 0) return;
  pthread_t t;
  int err = pthread_create(&t, NULL, writer_main, NULL);
  if (err) log_line("cannot start the hot-page writer: %s", strerror(err));
}

void mem_verify(struct verify_result *out) {
  uint64_t bad = 0;
  pthread_mutex_lock(&mem_lock);
  for (uint64_t page = 0; page < filled; page++) bad += !page_ok(page);
  out->pages = filled;
  pthread_mutex_unlock(&mem_lock);
  out->bad = bad;
  out->rewrites = mem_rewrites();
}

/* Reads mib MiB of workload memory (wrapping), summing words; lock-free, read-only. */
uint64_t mem_work(uint64_t mib) {
  uint64_t sum = 0, n = mib * PAGES_PER_MIB;
  uint64_t avail = __atomic_load_n(&filled, __ATOMIC_ACQUIRE);
  if (avail == 0) return 0;
  for (uint64_t k = 0; k < n; k++) {
    const uint64_t *w = mem + (k % avail) * PAGE_WORDS;
    for (uint64_t i = 0; i < PAGE_WORDS; i++) sum += w[i] ^ i;
  }
  return sum;
}

/*
 * Reads one word of every filled page, then sleeps until the next period: every page of the
 * workload is touched once per sweep_ms (a scan or a GC). Read-only and lock-free, like
 * mem_work; a sweep that takes longer than the period starts the next one at once.
 */
static void *sweeper_main(void *arg) {
  (void)arg;
  struct timespec due;
  clock_gettime(CLOCK_MONOTONIC, &due);
  volatile uint64_t sink = 0;
  for (;;) {
    uint64_t avail = __atomic_load_n(&filled, __ATOMIC_ACQUIRE);
    uint64_t sum = 0;
    for (uint64_t page = 0; page < avail; page++) sum += mem[page * PAGE_WORDS];
    sink = sum;
    __atomic_add_fetch(&sweeps, 1, __ATOMIC_RELAXED);
    add_ms(&due, sweep_ms);
    if (late_ms(&due) > 0) clock_gettime(CLOCK_MONOTONIC, &due);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR) {
    }
  }
  (void)sink;
  return NULL;
}

void mem_start_sweeper(void) {
  if (sweep_ms == 0) return;
  pthread_t t;
  int err = pthread_create(&t, NULL, sweeper_main, NULL);
  if (err) log_line("cannot start the sweeper: %s", strerror(err));
}

/* /proc/self/pagemap: one 64-bit entry per virtual page; bit 63 present, bits 0-54 the frame. */
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_PFN_MASK ((1ull << 55) - 1u)

int64_t mem_hot_frames(uint64_t from, uint64_t count, uint64_t *out) {
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  uint64_t n = 0;
  for (; n < count && from + n < hot_n; n++) {
    uintptr_t addr = (uintptr_t)(mem + (uint64_t)hot[from + n] * PAGE_WORDS);
    uint64_t entry = 0;
    if (pread(fd, &entry, sizeof entry, (off_t)(addr / PAGE_BYTES * sizeof entry)) !=
        (ssize_t)sizeof entry) {
      close(fd);
      return -1;
    }
    out[n] = (entry & PAGEMAP_PRESENT) ? entry & PAGEMAP_PFN_MASK : 0;
  }
  close(fd);
  return (int64_t)n;
}

uint64_t mem_pages(void) { return pages; }
uint64_t mem_hot_pages(void) { return hot_n; }
uint64_t mem_rewrites(void) { return __atomic_load_n(&rewrites, __ATOMIC_RELAXED); }
uint64_t mem_sweeps(void) { return __atomic_load_n(&sweeps, __ATOMIC_RELAXED); }
