/**
 * Time-to-responsiveness (TTR), VEE'11's metric, measured through the test guest's agent.
 *
 * Definition (kept stable so figures compare across runs, see docs/restore.md):
 * - baseline: the median round trip of TTR_BASELINE_PINGS pings to the undisturbed guest,
 *   floored at TTR_BASELINE_FLOOR_MS (host timer noise dominates below it);
 * - TTR: from the restore's start until the reply to the first of TTR_CONSECUTIVE_PINGS
 *   consecutive pings whose round trips are each ≤ 2 × baseline. Pings go back to back from
 *   the moment the agent socket accepts a connection.
 */
import assert from "node:assert/strict";
import { type AgentClient, waitUntilResponsive } from "./agent-client.ts";

export const TTR_BASELINE_PINGS = 21;
export const TTR_BASELINE_FLOOR_MS = 1;
export const TTR_CONSECUTIVE_PINGS = 3;
export const TTR_SLOWDOWN_MAX = 2;
/** Pings sent while waiting for responsiveness before giving up. */
const TTR_PINGS_MAX = 100_000;

/** Median ping round trip of an undisturbed guest, ms (floored). */
export async function baselineLatency(
  agent: AgentClient,
  pings = TTR_BASELINE_PINGS,
): Promise<number> {
  assert(pings > 0, "at least one ping");
  const samples: number[] = [];
  for (let i = 0; i < pings; i += 1) samples.push(await agent.ping());
  samples.sort((a, b) => a - b);
  return Math.max(TTR_BASELINE_FLOOR_MS, samples[Math.floor(samples.length / 2)] ?? 0);
}

export interface TtrResult {
  /** ms from startedAt (a performance.now() value) to responsiveness. */
  readonly ttrMs: number;
  /** ms from startedAt to the first answered ping. */
  readonly firstPingMs: number;
  readonly pings: number;
  /** The connected agent, for the caller to use and close. */
  readonly agent: AgentClient;
}

/** Connects to a restoring guest's agent and pings until it is responsive (definition above). */
export async function timeToResponsive(
  socketPath: string,
  opts: { startedAt: number; baselineMs: number; budgetMs: number },
): Promise<TtrResult> {
  const agent = await waitUntilResponsive(socketPath, opts.budgetMs);
  const firstPingMs = performance.now() - opts.startedAt;
  const limitMs = TTR_SLOWDOWN_MAX * opts.baselineMs;
  let streakStart: number | null = null;
  let streak = 0;
  for (let pings = 1; pings <= TTR_PINGS_MAX; pings += 1) {
    const sent = performance.now();
    const rtt = await agent.ping();
    if (rtt <= limitMs) {
      streakStart ??= sent + rtt;
      streak += 1;
      if (streak >= TTR_CONSECUTIVE_PINGS) {
        return { ttrMs: streakStart - opts.startedAt, firstPingMs, pings, agent };
      }
    } else {
      streakStart = null;
      streak = 0;
    }
    if (performance.now() - opts.startedAt > opts.budgetMs) break;
  }
  agent.close();
  throw new Error(`the guest did not become responsive within ${opts.budgetMs} ms`);
}
