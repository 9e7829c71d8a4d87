/*
 * Agent: one request line in, one reply line out, on the second serial port /dev/ttyS1
 * (the host sees it as a Unix socket). ASCII, '\n'-terminated, '\r' ignored, empty lines
 * ignored (the host sends one on connect to end any partial line left from before a restore).
 *   ping <token>  -> pong <token>
 *   verify        -> verify pages=<n> bad=<k> rewrites=<r>
 *   stats         -> stats {"phase":...,"memPages":n,...}
 *   files         -> files ok=<n> bad=<k> bytes=<b>
 *   work <mib>    -> work done=<mib> sum=<hex>
 *   scratch <mib> -> scratch done=<mib>  (dirties mib MiB, then frees them)
 *   hotframes <k> -> hotframes total=<n> from=<k> pfns=<hex>,<hex>,...  (the guest-physical
 *                    frames of hot pages k.. k+HOT_FRAMES_PER_REPLY-1; 0: not present)
 *   anything else -> error <reason>
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "swagent.h"

#define AGENT_TTY "/dev/ttyS1"
#define LINE_BYTES_MAX 256u /* requests are short; longer is garbage */
#define TOKEN_BYTES_MAX 64u
#define REPLY_BYTES_MAX 512u
/* Frames per hotframes reply: 40 x (up to 9 hex digits + ',') stays well under the reply cap. */
#define HOT_FRAMES_PER_REPLY 40u

static int running; /* atomic: 0 while filling, 1 once all workloads run */
static uint64_t start_ms;

int phase_running(void) { return __atomic_load_n(&running, __ATOMIC_ACQUIRE); }
void phase_set_running(void) { __atomic_store_n(&running, 1, __ATOMIC_RELEASE); }

static void write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

/* Parses a decimal u64 in [1, max]; returns 0 on anything else. */
static uint64_t parse_count(const char *s, uint64_t max) {
  if (*s < '0' || *s > '9') return 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  return (*end == '\0' && v <= max) ? v : 0;
}

static void reply_stats(char *out, size_t cap) {
  struct files_result f;
  files_last(&f);
  snprintf(out, cap,
           "stats {\"phase\":\"%s\",\"memPages\":%" PRIu64 ",\"hotPages\":%" PRIu64
           ",\"rewrites\":%" PRIu64 ",\"uptimeMs\":%" PRIu64 ",\"filesOk\":%" PRIu64
           ",\"filesBad\":%" PRIu64 ",\"pageCacheBytes\":%" PRIu64 ",\"sweeps\":%" PRIu64 "}",
           phase_running() ? "running" : "filling", mem_pages(), mem_hot_pages(),
           mem_rewrites(), monotonic_ms() - start_ms, f.ok, f.bad, page_cache_bytes(), mem_sweeps());
}

static void reply_hot_frames(const char *arg, char *out, size_t cap) {
  char *end = NULL;
  unsigned long long from = strtoull(arg, &end, 10);
  if (*arg < '0' || *arg > '9' || *end != '\0') {
    snprintf(out, cap, "error hotframes takes a hot-page index");
    return;
  }
  uint64_t frames[HOT_FRAMES_PER_REPLY];
  int64_t n = mem_hot_frames(from, HOT_FRAMES_PER_REPLY, frames);
  if (n < 0) {
    snprintf(out, cap, "error cannot read /proc/self/pagemap: %s", strerror(errno));
    return;
  }
  size_t used = (size_t)snprintf(out, cap, "hotframes total=%" PRIu64 " from=%llu pfns=",
                                 mem_hot_pages(), from);
  for (int64_t i = 0; i < n && used < cap; i++)
    used += (size_t)snprintf(out + used, cap - used, "%s%" PRIx64, i ? "," : "", frames[i]);
}

static void handle(const char *line, char *out, size_t cap) {
  if (strncmp(line, "ping", 4) == 0 && (line[4] == '\0' || line[4] == ' ')) {
    const char *token = line[4] ? line + 5 : "";
    if (strlen(token) > TOKEN_BYTES_MAX)
      snprintf(out, cap, "error token longer than %u bytes", TOKEN_BYTES_MAX);
    else
      snprintf(out, cap, "pong %s", token);
  } else if (strcmp(line, "verify") == 0) {
    struct verify_result v;
    mem_verify(&v);
    snprintf(out, cap, "verify pages=%" PRIu64 " bad=%" PRIu64 " rewrites=%" PRIu64, v.pages,
             v.bad, v.rewrites);
  } else if (strcmp(line, "stats") == 0) {
    reply_stats(out, cap);
  } else if (strcmp(line, "files") == 0) {
    struct files_result f;
    files_check(&f);
    snprintf(out, cap, "files ok=%" PRIu64 " bad=%" PRIu64 " bytes=%" PRIu64, f.ok, f.bad,
             f.bytes);
  } else if (strncmp(line, "work ", 5) == 0) {
    uint64_t mib = parse_count(line + 5, WORK_MIB_MAX);
    if (mib == 0)
      snprintf(out, cap, "error work takes a MiB count in [1, %u]", WORK_MIB_MAX);
    else
      snprintf(out, cap, "work done=%" PRIu64 " sum=%016" PRIx64, mib, mem_work(mib));
  } else if (strncmp(line, "scratch ", 8) == 0) {
    uint64_t mib = parse_count(line + 8, SCRATCH_MIB_MAX);
    if (mib == 0)
      snprintf(out, cap, "error scratch takes a MiB count in [1, %u]", SCRATCH_MIB_MAX);
    else if (scratch_dirty(mib) == 0)
      snprintf(out, cap, "error cannot map %" PRIu64 " MiB", mib);
    else
      snprintf(out, cap, "scratch done=%" PRIu64, mib);
  } else if (strncmp(line, "hotframes ", 10) == 0) {
    reply_hot_frames(line + 10, out, cap);
  } else {
    snprintf(out, cap, "error unknown command");
  }
}

static int open_tty(void) {
  for (int warned = 0;; warned = 1) {
    int fd = open(AGENT_TTY, O_RDWR | O_NOCTTY);
    if (fd >= 0) {
      struct termios t;
      if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
        tcsetattr(fd, TCSANOW, &t);
      }
      tcflush(fd, TCIFLUSH); /* bytes that arrived before we listened are stale */
      return fd;
    }
    if (!warned) log_line("cannot open %s (%s); retrying every second", AGENT_TTY, strerror(errno));
    sleep(1);
  }
}

static void *agent_main(void *arg) {
  (void)arg;
  int fd = open_tty();
  char line[LINE_BYTES_MAX + 1], reply[REPLY_BYTES_MAX], buf[256];
  size_t len = 0;
  int overlong = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      sleep(1); /* a tty hangup; keep serving, PID 1 depends on us */
      continue;
    }
    for (ssize_t i = 0; i < n; i++) {
      char c = buf[i];
      if (c == '\r') continue;
      if (c != '\n') {
        if (len < LINE_BYTES_MAX)
          line[len++] = c;
        else
          overlong = 1;
        continue;
      }
      line[len] = '\0';
      if (overlong)
        snprintf(reply, sizeof reply, "error line longer than %u bytes", LINE_BYTES_MAX);
      else if (len > 0)
        handle(line, reply, sizeof reply);
      if (overlong || len > 0) {
        size_t r = strlen(reply);
        reply[r] = '\n';
        write_all(fd, reply, r + 1);
      }
      len = 0;
      overlong = 0;
    }
  }
  return NULL;
}

void agent_start(void) {
  start_ms = monotonic_ms();
  pthread_t t;
  int err = pthread_create(&t, NULL, agent_main, NULL);
  if (err) log_line("cannot start the agent: %s", strerror(err));
}
