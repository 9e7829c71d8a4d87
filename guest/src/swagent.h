/*
 * swagent: the snapwake test guest's workloads and agent (one static binary).
 *
 * Threads:  main   parses /proc/cmdline, fills memory, loads the data files, then waits;
 *           agent  serves the line protocol on /dev/ttyS1 (started first, so `ping`
 *                  answers while memory is still filling);
 *           writer rewrites the hot pages at a bounded rate once setup is done;
 *           sweeper (snapwake.sweep_ms > 0) reads every filled page once per period, as a
 *                  scan or a garbage collector would: its working set is all of memory.
 * Invariant: every workload page holds page_word(seed, page, gen[page], i) for all i,
 *            except while the writer holds mem_lock and is rewriting that page.
 */
#ifndef SWAGENT_H
#define SWAGENT_H

#include <stdint.h>

#define PAGE_BYTES 4096u
#define PAGE_WORDS (PAGE_BYTES / 8u)
#define PAGES_PER_MIB 256u

/* Parameter bounds: the guest has at most a few GiB; rates beyond 1M pages/s are meaningless. */
#define MEM_MIB_MAX 16384u
#define HOT_RATE_MAX 1000000u
#define WORK_MIB_MAX 65536u
#define SCRATCH_MIB_MAX 16384u
#define SWEEP_MS_MAX 60000u /* a sweep period beyond a minute is no longer a "periodic scan" */

struct params {
  uint64_t mem_mib;  /* snapwake.mem_mib, anonymous memory to fill */
  uint64_t hot_pct;  /* snapwake.hot_pct, percent of pages the writer keeps rewriting */
  uint64_t hot_rate; /* snapwake.hot_rate, max hot pages rewritten per second */
  uint64_t seed;     /* snapwake.seed, PRNG seed of the memory pattern */
  uint64_t sweep_ms; /* snapwake.sweep_ms, read every filled page this often (0: never) */
};

struct verify_result {
  uint64_t pages;    /* pages checked (all filled pages) */
  uint64_t bad;      /* pages whose content does not match their generation */
  uint64_t rewrites; /* hot-page rewrites since start (monotonic) */
};

struct files_result {
  uint64_t ok;    /* files whose size and checksum match MANIFEST */
  uint64_t bad;   /* files that are missing, short, or mismatched (or an unreadable MANIFEST) */
  uint64_t bytes; /* bytes read */
};

/* params.c */
void params_parse(const char *cmdline, struct params *out);
uint64_t monotonic_ms(void);
void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* memload.c */
int mem_init(const struct params *p);
void mem_fill(void);
void mem_start_writer(void);
void mem_start_sweeper(void);
void mem_verify(struct verify_result *out);
uint64_t mem_work(uint64_t mib);
uint64_t mem_pages(void);
uint64_t mem_hot_pages(void);
uint64_t mem_rewrites(void);
uint64_t mem_sweeps(void);
/* Guest-physical frames of hot pages [from, from + count) into out (0: not present; needs
   root to read frames); returns how many were written, or -1 when pagemap cannot be read. */
int64_t mem_hot_frames(uint64_t from, uint64_t count, uint64_t *out);

/* scratch.c: dirties and frees mib MiB; returns mib, or 0 if it cannot map them */
uint64_t scratch_dirty(uint64_t mib);

/* filecache.c */
void files_check(struct files_result *out);
void files_last(struct files_result *out);
uint64_t page_cache_bytes(void);

/* agent.c */
void agent_start(void);
int phase_running(void);
void phase_set_running(void);

#endif
