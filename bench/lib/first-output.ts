/**
 * "First useful output" of a restored test guest, and the workload counters of the state a
 * save captured. The definition (also in docs/bench.md and the bench's JSON):
 *
 *   from invoking the restore until BOTH the guest agent has answered a ping AND a `stats`
 *   reply shows the workload's next tick:
 *   - hot-set guest (sweeper off): `rewrites` larger than in an earlier `stats` reply from the
 *     same restored guest (the hot writer, which ticks every 10 ms, was seen making progress);
 *   - sweeping guest: `sweeps` larger than in the saved state, i.e. a sweep over all of the
 *     workload's memory completed after the restore.
 *
 * The saved state's counters come from `watchSave`: the guest is polled with `stats` while it
 * is saved; the longest silence is the pause, and the last reply before it is the state saved
 * (a reply is answered by the running guest, so nothing it reports happened after the pause).
 *
 * Invariant: every timing is performance.now() of this process, from the moment the restore
 * was invoked (the spawn of `snapwake restore`, or of QEMU for QEMU's own restore).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { AgentClient, GuestAgentError, type GuestStats } from "../../guest/index.ts";

/** Which counter shows the workload's tick. */
export type TickCounter = "rewrites" | "sweeps";

/** Pause between `stats` polls while waiting for a tick; short against the 10 ms writer tick. */
const STATS_POLL_MS = 5;
/** First ping attempt; a ping not answered by then is followed by another, up to the max. */
const PING_ATTEMPT_FIRST_MS = 50;
const PING_ATTEMPT_MAX_MS = 1000;
const CONNECT_RETRY_MS = 20;
/** One stats request while the guest is saved: it waits out the whole pause. */
const SAVE_STATS_TIMEOUT_MS = 600_000;

export interface FirstOutput {
  /** Restore invoked → the agent's first pong. */
  readonly firstPingMs: number;
  /** Restore invoked → the stats reply showing the tick: the bench's headline time. */
  readonly firstOutputMs: number;
  /** The counter in that reply. */
  readonly counter: number;
}

/**
 * Waits for the restored guest's first useful output (definition above). `startedAt` is when
 * the restore was invoked; `savedCounter` the counter of the saved state (sweeps only).
 */
export async function firstUsefulOutput(
  agentSocket: string,
  o: {
    readonly startedAt: number;
    readonly counter: TickCounter;
    readonly savedCounter: number;
    readonly budgetMs: number;
  },
): Promise<{ result: FirstOutput; agent: AgentClient }> {
  const end = o.startedAt + o.budgetMs;
  const left = () => {
    const ms = end - performance.now();
    if (ms <= 0)
      throw new Error(`the restored guest showed no useful output within ${o.budgetMs} ms`);
    return ms;
  };
  let agent: AgentClient | null = null;
  while (agent === null) {
    try {
      agent = await AgentClient.connect(agentSocket, { timeoutMs: left() });
    } catch (error) {
      if (!(error instanceof GuestAgentError)) throw error;
      await sleep(Math.min(CONNECT_RETRY_MS, left()));
    }
  }
  // Pings sent before the guest runs wait in the socket (or are lost in the incoming UART):
  // keep one in flight, sending another after a growing wait.
  let attemptMs = PING_ATTEMPT_FIRST_MS;
  for (;;) {
    try {
      await agent.ping({ timeoutMs: Math.min(attemptMs, left()) });
      break;
    } catch (error) {
      if (!(error instanceof GuestAgentError) || agent.closed) throw error;
      attemptMs = Math.min(PING_ATTEMPT_MAX_MS, attemptMs * 2);
    }
  }
  const firstPingMs = performance.now() - o.startedAt;
  let floor = o.counter === "sweeps" ? o.savedCounter : null;
  for (;;) {
    const stats = await agent.stats({ timeoutMs: left() });
    const value = stats[o.counter];
    const at = performance.now();
    if (floor !== null && value > floor)
      return { result: { firstPingMs, firstOutputMs: at - o.startedAt, counter: value }, agent };
    floor ??= value;
    await sleep(STATS_POLL_MS);
  }
}

export interface SavedState {
  /** The last stats reply before the guest paused for the save: the state saved. */
  readonly stats: GuestStats;
  /** When that reply arrived and when the guest answered again (performance.now()). */
  readonly pausedAfter: number;
  readonly resumedAt: number;
  /** ms from the reply that first showed the saved `sweeps` value to the pause. */
  readonly sweepPhaseMs: number;
}

/** What a save callback can wait for while `watchSave` polls. */
export interface SaveWatch {
  /** Resolves when a stats reply shows a sweep completed after this call; gives its time. */
  nextSweep(timeoutMs: number): Promise<number>;
}

/**
 * Runs `save` (which pauses the guest, saves it and lets it run again) while polling the
 * guest's stats; returns what `save` returned and the saved state (see the header).
 */
export async function watchSave<T>(
  agent: AgentClient,
  save: (watch: SaveWatch) => Promise<T>,
): Promise<{ saved: T; state: SavedState }> {
  const replies: { at: number; stats: GuestStats }[] = [];
  let saving = true;
  const poll = (async () => {
    while (saving) {
      const stats = await agent.stats({ timeoutMs: SAVE_STATS_TIMEOUT_MS });
      replies.push({ at: performance.now(), stats });
      await sleep(1);
    }
  })();
  const watch: SaveWatch = {
    async nextSweep(timeoutMs) {
      const end = performance.now() + timeoutMs;
      while (replies.length === 0) await sleep(1);
      const from = replies.length;
      const sweeps = replies[from - 1]?.stats.sweeps ?? 0;
      for (;;) {
        const hit = replies.slice(from).find((r) => r.stats.sweeps > sweeps);
        if (hit !== undefined) return hit.at;
        if (performance.now() > end)
          throw new Error(`the guest's sweeper completed no sweep within ${timeoutMs} ms`);
        await sleep(1);
      }
    },
  };
  // A reply from before the save: without one, a save that pauses the guest at once (QEMU's
  // own migrate of a large guest) left nothing to tell the saved state by.
  while (replies.length === 0) await sleep(1);
  let saved: T;
  try {
    saved = await save(watch);
  } catch (error) {
    saving = false;
    agent.close(); // the poll's request in flight rejects with it
    await poll.catch(() => undefined);
    throw error;
  }
  // One more reply after the save proves the guest runs again and closes the last gap.
  const count = replies.length;
  while (replies.length === count) await sleep(STATS_POLL_MS);
  saving = false;
  await poll;
  let gap = 1;
  const silence = (i: number) => (replies[i]?.at ?? 0) - (replies[i - 1]?.at ?? 0);
  for (let i = 2; i < replies.length; i++) if (silence(i) > silence(gap)) gap = i;
  const before = replies[gap - 1];
  const after = replies[gap];
  if (before === undefined || after === undefined)
    throw new Error("the guest answered no stats around its save: cannot tell what was saved");
  const firstWithSweeps = replies.find((r) => r.stats.sweeps === before.stats.sweeps);
  return {
    saved,
    state: {
      stats: before.stats,
      pausedAfter: before.at,
      resumedAt: after.at,
      sweepPhaseMs: before.at - (firstWithSweeps?.at ?? before.at),
    },
  };
}
