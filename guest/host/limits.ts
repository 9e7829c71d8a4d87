/**
 * Limits of the test guest and its agent, with units last. They stay out of src/limits.ts:
 * the test guest is not part of the library. The guest-side twins are in guest/src/swagent.h
 * and agent.c; keep them in step.
 */
import assert from "node:assert/strict";

/** Longest reply line: `stats` JSON is ~200 bytes; more is garbage on the serial line. */
export const AGENT_LINE_BYTES_MAX = 4096;
/** Longest ping token the guest echoes (guest: TOKEN_BYTES_MAX). */
export const AGENT_TOKEN_BYTES_MAX = 64;
/** Requests in flight on one connection; the guest answers one at a time. */
export const AGENT_PENDING_MAX = 64;
/** Default wait for one reply: `verify` of 1 GiB under TCG takes a few seconds. */
export const AGENT_REQUEST_TIMEOUT_MS = 30_000;
/** waitUntilResponsive: wait per ping before sending the next one (boot output may delay it). */
export const AGENT_PING_ATTEMPT_MS = 500;
/** waitUntilResponsive: pause between connection attempts while QEMU creates the socket. */
export const AGENT_CONNECT_RETRY_MS = 100;
/** waitUntilResponsive: longest budget anyone should need; more is a unit mistake (seconds?). */
export const AGENT_WAIT_MS_MAX = 60 * 60 * 1000;
/** `work <mib>` bound (guest: WORK_MIB_MAX). */
export const AGENT_WORK_MIB_MAX = 65_536;
/** `scratch <mib>` bound (guest: SCRATCH_MIB_MAX). */
export const AGENT_SCRATCH_MIB_MAX = 16_384;

/** snapwake.mem_mib bound (guest: MEM_MIB_MAX). */
export const GUEST_MEM_MIB_MAX = 16_384;
/** snapwake.hot_rate bound, pages per second (guest: HOT_RATE_MAX). */
export const GUEST_HOT_RATE_MAX = 1_000_000;
/** snapwake.sweep_ms bound, ms (guest: SWEEP_MS_MAX); 0 turns the sweeper off. */
export const GUEST_SWEEP_MS_MAX = 60_000;

/** Data disk: files are generated in memory, one at a time; 1 GiB each is plenty. */
export const DATA_FILE_BYTES_MAX = 1 << 30;
/** Data disk: the guest reads at most this many MANIFEST lines' worth of names. */
export const DATA_FILES_MAX = 256;
/** Data disk total, bounded so a typo cannot fill the host disk. */
export const DATA_TOTAL_BYTES_MAX = 4 * 1024 * 1024 * 1024;

assert(
  AGENT_PING_ATTEMPT_MS < AGENT_REQUEST_TIMEOUT_MS,
  "a ping attempt is shorter than a request",
);
assert(DATA_FILES_MAX * DATA_FILE_BYTES_MAX >= DATA_TOTAL_BYTES_MAX, "the total fits in the files");
