/*
 * Page-cache workload: the data disk is mounted read-only at /data by /init. Every file
 * listed in /data/MANIFEST ("<name> <size> <fnv1a64 hex>" per line, '#' comments) is read in
 * full, so it stays in the page cache, and checked against its size and checksum.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mix.h"
#include "swagent.h"

#define DATA_DIR "/data"
#define MANIFEST_PATH DATA_DIR "/MANIFEST"
#define READ_CHUNK_BYTES (1u << 20)
#define FILE_NAME_BYTES_MAX 128u

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static struct files_result last;
static unsigned char *chunk;

/* Reads path fully; returns 1 if it has exactly size bytes with checksum sum. */
static int file_ok(const char *name, uint64_t size, uint64_t sum, uint64_t *bytes) {
  char path[sizeof DATA_DIR + FILE_NAME_BYTES_MAX + 2];
  snprintf(path, sizeof path, "%s/%s", DATA_DIR, name);
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    log_line("cannot open %s: %s", path, strerror(errno));
    return 0;
  }
  uint64_t h = FNV64_OFFSET, total = 0;
  ssize_t n;
  while ((n = read(fd, chunk, READ_CHUNK_BYTES)) > 0) {
    h = fnv1a64(h, chunk, (size_t)n);
    total += (uint64_t)n;
  }
  int read_err = n < 0 ? errno : 0;
  close(fd);
  *bytes += total;
  if (read_err) log_line("cannot read %s: %s", path, strerror(read_err));
  if (read_err || total != size || h != sum) {
    log_line("%s: %" PRIu64 " bytes, fnv1a64 %016" PRIx64 "; MANIFEST says %" PRIu64
             " bytes, %016" PRIx64, name, total, h, size, sum);
    return 0;
  }
  return 1;
}

static void check_all(struct files_result *r) {
  memset(r, 0, sizeof *r);
  FILE *m = fopen(MANIFEST_PATH, "r");
  if (!m) {
    log_line("cannot open %s: %s; is the data disk attached as virtio drive 0?", MANIFEST_PATH,
             strerror(errno));
    r->bad = 1;
    return;
  }
  char line[256], name[FILE_NAME_BYTES_MAX + 1];
  uint64_t size, sum;
  while (fgets(line, sizeof line, m)) {
    if (line[0] == '#' || line[0] == '\n') continue;
    if (sscanf(line, "%128s %" SCNu64 " %" SCNx64, name, &size, &sum) != 3) {
      log_line("bad MANIFEST line: %s", line);
      r->bad++;
      continue;
    }
    if (file_ok(name, size, sum, &r->bytes))
      r->ok++;
    else
      r->bad++;
  }
  fclose(m);
}

void files_check(struct files_result *out) {
  pthread_mutex_lock(&files_lock);
  if (!chunk) chunk = malloc(READ_CHUNK_BYTES);
  if (chunk)
    check_all(&last);
  else
    last = (struct files_result){.ok = 0, .bad = 1, .bytes = 0};
  *out = last;
  pthread_mutex_unlock(&files_lock);
}

void files_last(struct files_result *out) {
  pthread_mutex_lock(&files_lock);
  *out = last;
  pthread_mutex_unlock(&files_lock);
}

/* "Cached:" from /proc/meminfo, in bytes; 0 if unreadable. */
uint64_t page_cache_bytes(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[128];
  uint64_t kib = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Cached: %" SCNu64 " kB", &kib) == 1) break;
  fclose(f);
  return kib * 1024u;
}
