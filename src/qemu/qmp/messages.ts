/**
 * Decodes one QMP line into a tagged message. QMP (docs/interop/qmp-spec.rst) sends four
 * kinds of JSON object: the greeting, a success (`return`), an error (`error`) and an event.
 * Anything else is a protocol violation and throws QemuError.
 */
import { QemuError } from "../../errors.ts";
import type { VersionInfo } from "./commands.ts";
import { isQmpEventName, type QmpEvent } from "./events.ts";

export type QmpMessage =
  | { kind: "greeting"; version: VersionInfo }
  | { kind: "return"; id: unknown; value: unknown }
  | { kind: "error"; id: unknown; errorClass: string; desc: string }
  | { kind: "event"; event: QmpEvent }
  /** An event not in QmpEvents: nobody here waits for it. */
  | { kind: "other-event"; name: string };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function violation(why: string, line: string): QemuError {
  const quoted = line.length > 200 ? `${line.slice(0, 200)}…` : line;
  return new QemuError(`QMP protocol violation: ${why} in ${JSON.stringify(quoted)}`);
}

export function parseQmpMessage(line: string): QmpMessage {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (error) {
    throw new QemuError(`QMP sent a line that is not JSON: ${JSON.stringify(line.slice(0, 200))}`, {
      cause: error,
    });
  }
  if (!isObject(json)) throw violation("not a JSON object", line);
  if ("return" in json) return { kind: "return", id: json.id, value: json.return };
  if ("error" in json) {
    const error = json.error;
    if (!isObject(error) || typeof error.class !== "string" || typeof error.desc !== "string") {
      throw violation("error without class and desc", line);
    }
    return { kind: "error", id: json.id, errorClass: error.class, desc: error.desc };
  }
  if (typeof json.event === "string") return parseEvent(json, json.event, line);
  if (isObject(json.QMP)) {
    const version = json.QMP.version;
    if (!isObject(version) || !isObject(version.qemu))
      throw violation("greeting without version", line);
    return { kind: "greeting", version: version as unknown as VersionInfo };
  }
  throw violation("neither a reply, an event nor a greeting", line);
}

function parseEvent(json: Record<string, unknown>, name: string, line: string): QmpMessage {
  if (!isQmpEventName(name)) return { kind: "other-event", name };
  const data = json.data ?? {};
  if (!isObject(data)) throw violation(`event ${name} with non-object data`, line);
  const stamp = isObject(json.timestamp) ? json.timestamp : {};
  const seconds = typeof stamp.seconds === "number" ? stamp.seconds : 0;
  const microseconds = typeof stamp.microseconds === "number" ? stamp.microseconds : 0;
  const event = { name, data, timestampMs: seconds * 1000 + microseconds / 1000 };
  return { kind: "event", event: event as QmpEvent };
}
