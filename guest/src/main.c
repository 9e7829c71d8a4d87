/* swagent entry point: parameters, then the agent, then the workloads; never returns. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "swagent.h"

static void read_cmdline(char *buf, size_t cap) {
  buf[0] = '\0';
  FILE *f = fopen("/proc/cmdline", "r");
  if (!f) return;
  if (!fgets(buf, (int)cap, f)) buf[0] = '\0';
  fclose(f);
}

int main(void) {
  char cmdline[4096];
  read_cmdline(cmdline, sizeof cmdline);
  struct params p;
  params_parse(cmdline, &p);
  log_line("params mem_mib=%" PRIu64 " hot_pct=%" PRIu64 " hot_rate=%" PRIu64 " seed=%" PRIu64
           " sweep_ms=%" PRIu64,
           p.mem_mib, p.hot_pct, p.hot_rate, p.seed, p.sweep_ms);
  if (mem_init(&p) != 0) return 1;
  agent_start();

  uint64_t t0 = monotonic_ms();
  mem_fill();
  uint64_t t1 = monotonic_ms();
  log_line("filled %" PRIu64 " MiB in %" PRIu64 " ms", p.mem_mib, t1 - t0);

  struct files_result f;
  files_check(&f);
  uint64_t t2 = monotonic_ms();
  log_line("files ok=%" PRIu64 " bad=%" PRIu64 " bytes=%" PRIu64 " in %" PRIu64 " ms", f.ok,
           f.bad, f.bytes, t2 - t1);

  mem_start_writer();
  mem_start_sweeper();
  phase_set_running();
  log_line("ready hot_pages=%" PRIu64, mem_hot_pages());
  for (;;) pause();
}
