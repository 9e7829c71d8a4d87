/* Kernel command line parameters (snapwake.*), the monotonic clock, and console logging. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "swagent.h"

static const struct params defaults = {
    .mem_mib = 64,
    .hot_pct = 5,
    .hot_rate = 2000,
    .seed = 1,
    .sweep_ms = 0,
};

/* Parses "<name>=<u64>" into *out if it is in [min, max]; otherwise logs and keeps *out. */
static void parse_u64(const char *name, const char *value, uint64_t min, uint64_t max,
                      uint64_t *out) {
  char *end = NULL;
  unsigned long long v = strtoull(value, &end, 0);
  if (end == value || *end != '\0' || v < min || v > max) {
    log_line("ignoring snapwake.%s=%s: expected an integer in [%llu, %llu]", name, value,
             (unsigned long long)min, (unsigned long long)max);
    return;
  }
  *out = v;
}

void params_parse(const char *cmdline, struct params *out) {
  *out = defaults;
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", cmdline);
  char *save = NULL;
  for (char *tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
    if (strncmp(tok, "snapwake.", 9) != 0) continue;
    char *name = tok + 9;
    char *eq = strchr(name, '=');
    if (!eq) continue;
    *eq = '\0';
    const char *value = eq + 1;
    if (strcmp(name, "mem_mib") == 0)
      parse_u64(name, value, 1, MEM_MIB_MAX, &out->mem_mib);
    else if (strcmp(name, "hot_pct") == 0)
      parse_u64(name, value, 0, 100, &out->hot_pct);
    else if (strcmp(name, "hot_rate") == 0)
      parse_u64(name, value, 0, HOT_RATE_MAX, &out->hot_rate);
    else if (strcmp(name, "sweep_ms") == 0)
      parse_u64(name, value, 0, SWEEP_MS_MAX, &out->sweep_ms);
    else if (strcmp(name, "seed") == 0)
      parse_u64(name, value, 0, UINT64_MAX, &out->seed);
    else
      log_line("ignoring unknown parameter snapwake.%s", name);
  }
}

uint64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One line on the console (ttyS0), prefixed so hosts can grep the boot log. */
void log_line(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  printf("snapwake-guest: %s\n", line);
  fflush(stdout);
}
