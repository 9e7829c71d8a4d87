/**
 * Which kernel modules the initramfs needs, in load order, from the text of
 * /lib/modules/<ver>/{modules.dep, modules.builtin, modules.softdep, modules.alias}.
 * Invariants: a module comes after everything it depends on (modules.dep is the truth);
 * built-in modules are never listed; each "softdep pre:" of a chosen module is satisfied by
 * a chosen or built-in module, or resolution fails and says which module to add.
 */
import assert from "node:assert/strict";
import { NotFoundError } from "../../src/errors.ts";

export interface ModuleTables {
  dep: string;
  builtin: string;
  softdep: string;
  alias: string;
}

export interface ModuleResolution {
  /** Paths relative to /lib/modules/<ver>, dependencies first. */
  loadOrder: string[];
  /** Wanted modules that are built into the kernel (nothing to load). */
  builtin: string[];
}

/** The kernel's module name: "kernel/lib/crc-t10dif.ko" -> "crc_t10dif". */
export function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, "").replaceAll("-", "_");
}

function parseDep(text: string): Map<string, { path: string; deps: string[] }> {
  const byName = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(moduleName);
    byName.set(moduleName(path), { path, deps });
  }
  return byName;
}

function parseSoftdepPre(text: string): Map<string, string[]> {
  const pre = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== "softdep" || words[1] === undefined) continue;
    const preAt = words.indexOf("pre:");
    if (preAt < 0) continue;
    const postAt = words.indexOf("post:");
    const names = words.slice(preAt + 1, postAt > preAt ? postAt : undefined);
    pre.set(words[1].replaceAll("-", "_"), names);
  }
  return pre;
}

/** Modules providing name: itself, or the exact (non-wildcard) aliases of it. */
function providers(name: string, aliasText: string): string[] {
  const found = [name.replaceAll("-", "_")];
  for (const line of aliasText.split("\n")) {
    const words = line.split(" ");
    if (words[0] === "alias" && words[1] === name && words[2] !== undefined)
      found.push(words[2].replaceAll("-", "_"));
  }
  return found;
}

/** Resolves wanted module names to a load order; throws NotFoundError on unknown names. */
export function resolveModules(tables: ModuleTables, wanted: readonly string[]): ModuleResolution {
  const byName = parseDep(tables.dep);
  const builtinNames = new Set(tables.builtin.split("\n").filter(Boolean).map(moduleName));
  const loadOrder: string[] = [];
  const chosen = new Set<string>();
  const visit = (name: string, depth: number): void => {
    assert(depth < 64, "module dependency chains are short");
    if (chosen.has(name) || builtinNames.has(name)) return;
    const entry = byName.get(name);
    if (entry === undefined)
      throw new NotFoundError(
        `Cannot find kernel module "${name}" in modules.dep or modules.builtin: ` +
          "install the matching linux-image package or drop it from the guest's module list",
      );
    for (const dep of entry.deps) visit(dep, depth + 1);
    chosen.add(name);
    loadOrder.push(entry.path);
  };
  const wantedNames = wanted.map((w) => w.replaceAll("-", "_"));
  for (const name of wantedNames) visit(name, 0);
  checkSoftdeps(tables, chosen, builtinNames);
  return { loadOrder, builtin: wantedNames.filter((n) => builtinNames.has(n)) };
}

function checkSoftdeps(tables: ModuleTables, chosen: Set<string>, builtin: Set<string>): void {
  const pre = parseSoftdepPre(tables.softdep);
  for (const name of chosen) {
    for (const need of pre.get(name) ?? []) {
      const options = providers(need, tables.alias);
      if (options.some((m) => chosen.has(m) || builtin.has(m))) continue;
      throw new NotFoundError(
        `Kernel module "${name}" needs "${need}" first (modules.softdep), and no chosen ` +
          `module provides it: add one of ${options.join(", ")} to the guest's module list`,
      );
    }
  }
}
