/**
 * JSON values as stored in the manifest, and a check that a caller's object really is one
 * (no functions, bigints, byte arrays, NaN, class instances), so what we store is what the
 * caller reads back.
 */
import { UsageError } from "../../errors.ts";

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  readonly [key: string]: JsonValue;
}

/** JSON nesting accepted in caller objects: specs are shallow; deep means a cycle or a bug. */
const JSON_DEPTH_MAX = 64;

/**
 * A JSON copy of `value`, or UsageError naming the first non-JSON part. Properties whose value is
 * `undefined` are dropped (as JSON.stringify does): optional fields are common in specs.
 */
export function toJsonObject(value: unknown, what: string): JsonObject {
  if (!isPlainObject(value)) throw new UsageError(`${what} must be a plain JSON object`);
  return copyJson(value, what, 0) as JsonObject;
}

function copyJson(value: unknown, path: string, depth: number): JsonValue {
  if (depth > JSON_DEPTH_MAX)
    throw new UsageError(`${path} is nested more than ${JSON_DEPTH_MAX} deep`);
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") {
    if (Number.isFinite(value)) return value;
    throw new UsageError(`${path} is ${value}, which JSON cannot hold`);
  }
  if (Array.isArray(value)) return value.map((v, i) => copyJson(v, `${path}[${i}]`, depth + 1));
  if (isPlainObject(value)) {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined) out[k] = copyJson(v, `${path}.${k}`, depth + 1);
    }
    return out;
  }
  const kind = value instanceof Uint8Array ? "a byte array" : typeof value;
  throw new UsageError(`${path} is ${kind}, which JSON cannot hold`);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
