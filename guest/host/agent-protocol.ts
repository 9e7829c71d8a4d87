/**
 * The guest agent's line protocol (guest/src/agent.c is the other side), as typed requests
 * and replies. One ASCII request line gets one reply line, in order:
 *   ping <token> -> pong <token>
 *   verify       -> verify pages=<n> bad=<k> rewrites=<r>
 *   stats        -> stats <single-line JSON, see GuestStats>
 *   files        -> files ok=<n> bad=<k> bytes=<b>
 *   work <mib>   -> work done=<mib> sum=<16 hex digits>
 *   scratch <mib> -> scratch done=<mib>
 *   hotframes <k> -> hotframes total=<n> from=<k> pfns=<hex>,...  (frames of hot pages k..)
 *   otherwise    -> error <reason>
 * Lines that are not replies (bytes left from before a restore, a reply's torn tail) parse
 * as "noise"; a known verb with fields that do not parse is "invalid".
 */
import { assertNever } from "../../src/util/index.ts";
export type AgentRequest =
  | { verb: "ping"; token: string }
  | { verb: "verify" }
  | { verb: "stats" }
  | { verb: "files" }
  | { verb: "work"; mib: number }
  | { verb: "scratch"; mib: number }
  | { verb: "hotframes"; from: number };

/** Memory workload check: every filled page compared with its generation's pattern. */
export interface VerifyResult {
  pages: number;
  bad: number;
  /** Hot-page rewrites since the guest started; keeps growing across checkpoint/restore. */
  rewrites: number;
}

export type GuestPhase = "filling" | "running";

export interface GuestStats {
  /** "running" once memory is filled, files are cached and the writer runs. */
  phase: GuestPhase;
  memPages: number;
  hotPages: number;
  rewrites: number;
  /** Guest CLOCK_MONOTONIC since swagent started. */
  uptimeMs: number;
  filesOk: number;
  filesBad: number;
  /** "Cached:" of the guest's /proc/meminfo. */
  pageCacheBytes: number;
  /** Sweeps of all filled pages completed (snapwake.sweep_ms; 0 when it is off). */
  sweeps: number;
}

/** Page-cache workload check: every data-disk file re-read and checksummed. */
export interface FilesResult {
  ok: number;
  bad: number;
  bytes: number;
}

export interface WorkResult {
  /** MiB of workload memory read. */
  done: number;
  /** Sum of the words read, 16 hex digits; changes as hot pages are rewritten. */
  sum: string;
}

/** One page of the hot pages' guest-physical frames (from the guest's /proc/self/pagemap). */
export interface HotFrames {
  /** Hot pages in all. */
  total: number;
  /** Index of the first hot page in `pfns`. */
  from: number;
  /** Frame numbers, 0 for a page not present; empty past the end. */
  pfns: number[];
}

export type AgentReply =
  | { verb: "pong"; token: string }
  | { verb: "verify"; result: VerifyResult }
  | { verb: "stats"; result: GuestStats }
  | { verb: "files"; result: FilesResult }
  | { verb: "work"; result: WorkResult }
  | { verb: "scratch"; done: number }
  | { verb: "hotframes"; result: HotFrames }
  | { verb: "error"; message: string }
  | { verb: "invalid"; of: AgentRequest["verb"]; line: string; reason: string }
  | { verb: "noise"; line: string };

/** The request's line, without its "\n". */
export function formatRequest(request: AgentRequest): string {
  switch (request.verb) {
    case "ping":
      return `ping ${request.token}`;
    case "work":
    case "scratch":
      return `${request.verb} ${request.mib}`;
    case "hotframes":
      return `hotframes ${request.from}`;
    case "verify":
    case "stats":
    case "files":
      return request.verb;
    default:
      return assertNever(request, "agent request");
  }
}

/** Parses "k=v k=v" into exactly the wanted keys as safe integers; a string says what is wrong. */
function counters<K extends string>(text: string, keys: readonly K[]): Record<K, number> | string {
  const fields = new Map<string, string>();
  for (const part of text.split(" ")) {
    const eq = part.indexOf("=");
    if (eq <= 0) return `field "${part}" is not key=value`;
    fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const out = {} as Record<K, number>;
  for (const key of keys) {
    const raw = fields.get(key) ?? "";
    if (!/^\d{1,16}$/.test(raw)) return `${key}="${raw}" is not a decimal count`;
    out[key] = Number(raw);
  }
  return fields.size === keys.length ? out : `expected exactly ${keys.join(", ")}`;
}

const STATS_COUNTERS = [
  "memPages",
  "hotPages",
  "rewrites",
  "uptimeMs",
  "filesOk",
  "filesBad",
  "pageCacheBytes",
  "sweeps",
] as const;

function parseStats(json: string): GuestStats | string {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    return `not JSON (${e instanceof Error ? e.message : String(e)})`;
  }
  if (typeof value !== "object" || value === null) return "not a JSON object";
  const o = value as Record<string, unknown>;
  if (o.phase !== "filling" && o.phase !== "running") return `phase ${String(o.phase)} unknown`;
  for (const key of STATS_COUNTERS)
    if (!Number.isSafeInteger(o[key]) || (o[key] as number) < 0) return `${key} is not a count`;
  const n = (key: (typeof STATS_COUNTERS)[number]) => o[key] as number;
  return {
    phase: o.phase,
    memPages: n("memPages"),
    hotPages: n("hotPages"),
    rewrites: n("rewrites"),
    uptimeMs: n("uptimeMs"),
    filesOk: n("filesOk"),
    filesBad: n("filesBad"),
    pageCacheBytes: n("pageCacheBytes"),
    sweeps: n("sweeps"),
  };
}

function parseWork(rest: string): WorkResult | string {
  const m = /^done=(\d{1,16}) sum=([0-9a-f]{16})$/.exec(rest);
  if (m === null || m[1] === undefined || m[2] === undefined) return "expected done=<n> sum=<hex>";
  return { done: Number(m[1]), sum: m[2] };
}

function parseHotFrames(rest: string): HotFrames | string {
  const m =
    /^total=(\d{1,16}) from=(\d{1,16}) pfns=((?:[0-9a-f]{1,14})(?:,[0-9a-f]{1,14})*)?$/.exec(rest);
  if (m === null || m[1] === undefined || m[2] === undefined) {
    return "expected total=<n> from=<k> pfns=<hex>,...";
  }
  const pfns = m[3] === undefined ? [] : m[3].split(",").map((h) => Number.parseInt(h, 16));
  return { total: Number(m[1]), from: Number(m[2]), pfns };
}

/** Classifies one reply line (without "\n" or "\r"). Never throws. */
export function parseReply(line: string): AgentReply {
  const space = line.indexOf(" ");
  const verb = space < 0 ? line : line.slice(0, space);
  const rest = space < 0 ? "" : line.slice(space + 1);
  const checked = <T>(of: AgentRequest["verb"], r: T | string, ok: (t: T) => AgentReply) =>
    typeof r === "string" ? ({ verb: "invalid", of, line, reason: r } as const) : ok(r);
  switch (verb) {
    case "pong":
      return { verb: "pong", token: rest };
    case "verify":
      return checked("verify", counters(rest, ["pages", "bad", "rewrites"]), (result) => ({
        verb: "verify",
        result,
      }));
    case "stats":
      return checked("stats", parseStats(rest), (result) => ({ verb: "stats", result }));
    case "files":
      return checked("files", counters(rest, ["ok", "bad", "bytes"]), (result) => ({
        verb: "files",
        result,
      }));
    case "work":
      return checked("work", parseWork(rest), (result) => ({ verb: "work", result }));
    case "scratch":
      return checked("scratch", counters(rest, ["done"]), ({ done }) => ({
        verb: "scratch",
        done,
      }));
    case "hotframes":
      return checked("hotframes", parseHotFrames(rest), (result) => ({
        verb: "hotframes",
        result,
      }));
    case "error":
      return { verb: "error", message: rest };
    default:
      return { verb: "noise", line };
  }
}

/** Guest errors that answer lines we never send: they are stale, never a reply to us. */
const FOREIGN_ERRORS = [/^unknown command$/, /^line longer than/, /^token longer than/];

/** Whether reply is the answer to request (replies come in order, but stale lines may not). */
export function answers(request: AgentRequest, reply: AgentReply): boolean {
  switch (reply.verb) {
    case "pong":
      return request.verb === "ping" && request.token === reply.token;
    case "verify":
    case "stats":
    case "files":
    case "work":
    case "scratch":
      return request.verb === reply.verb;
    case "hotframes":
      return request.verb === "hotframes" && request.from === reply.result.from;
    case "invalid":
      return request.verb === reply.of;
    case "error":
      return request.verb !== "ping" && !FOREIGN_ERRORS.some((re) => re.test(reply.message));
    case "noise":
      return false;
    default:
      return assertNever(reply, "agent message");
  }
}
