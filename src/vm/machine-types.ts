/**
 * The machine types a QEMU install knows (`-machine help`), cached in the store, so that a
 * restore refuses a checkpoint whose machine type its QEMU lacks before that QEMU starts,
 * without running QEMU one more time on every restore (the exec costs ~30 ms on an idle host
 * and over 100 ms on a busy one; reading the cache ~1 ms; docs/qemu-versions.md).
 *
 * One file per install (`<home>/cache/qemu/<key>.json`, store/layout.ts), the key being the
 * SHA-256 of where the install is: the binary's real path (a bare name is looked up on PATH,
 * as exec does), its -L dirs and its module dir. The file also records the binary's identity
 * when QEMU was asked (size, mtime, inode, device): an upgraded or replaced binary no longer
 * matches, is asked again, and its answer overwrites the file. Anything else that is not a
 * well-formed file for this install and identity (missing, unreadable, too big, corrupt) is a
 * miss too: the cache can cost an exec, never a restore. Writes are best-effort and atomic (a
 * temp file next to the cache file, renamed over it).
 *
 * Limit: the identity is the binary's own. A wrapper script that execs another QEMU keeps its
 * identity when that QEMU changes; the restore's check (restore/machine-check.ts) therefore
 * asks QEMU again before it refuses on a cached list, and explains a failed start afresh.
 */
import { execFile } from "node:child_process";
import crypto from "node:crypto";
import { constants } from "node:fs";
import { access, mkdir, readFile, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { delimiter, join, resolve } from "node:path";
import { promisify } from "node:util";
import { QemuError } from "../errors.ts";
import { MACHINE_TYPES_CACHE_BYTES_MAX } from "../limits.ts";
import { machineTypesCacheDir, machineTypesCacheFile } from "../store/layout.ts";
import { dataDirArgs, type QemuInstall, qemuCommand } from "./qemu-install.ts";

const run = promisify(execFile);
const CACHE_VERSION = 1;

export interface KnownMachineTypes {
  /** Every machine type the install knows, aliases (`pc`) included. */
  readonly names: ReadonlySet<string>;
  /** True when QEMU was asked for this answer; false when it came from the cache. */
  readonly asked: boolean;
}

/** Where an install is: the part of the cache file its name is derived from. */
interface InstallKey {
  readonly binary: string;
  readonly dataDirs: readonly string[];
  readonly moduleDir: string | null;
}

/** The binary's file as it was when QEMU was asked; decimal strings (64-bit values). */
interface BinaryIdentity {
  readonly size: string;
  readonly mtimeNs: string;
  readonly ino: string;
  readonly dev: string;
}

interface CacheFile {
  readonly version: number;
  readonly install: InstallKey;
  readonly identity: BinaryIdentity;
  readonly machines: readonly string[];
}

/**
 * The machine types `install` knows: from the cache when it holds them for this binary (and
 * `ask` is not set), else from QEMU, then cached. Throws QemuError when QEMU cannot be asked.
 */
export async function machineTypes(
  home: string,
  install: QemuInstall,
  options: { readonly ask?: boolean } = {},
): Promise<KnownMachineTypes> {
  const found = await locate(home, install);
  if (found !== null && options.ask !== true) {
    const cached = await readCache(found);
    if (cached !== null) return { names: cached, asked: false };
  }
  // Identified before asking: a binary replaced meanwhile is cached under its old identity,
  // which the next restore no longer matches.
  const names = await askQemu(install);
  if (found !== null) await writeCache(home, found, names);
  return { names, asked: true };
}

interface Located {
  readonly key: InstallKey;
  readonly file: string;
  readonly identity: BinaryIdentity;
}

/** The install's cache file and its binary's identity; null if the binary cannot be found. */
async function locate(home: string, install: QemuInstall): Promise<Located | null> {
  const binary = await realBinary(install.binary);
  if (binary === null) return null;
  const s = await stat(binary, { bigint: true }).catch(() => null);
  if (s === null || !s.isFile()) return null;
  const key: InstallKey = {
    binary,
    dataDirs: install.dataDirs,
    moduleDir: install.moduleDir ?? null,
  };
  const hash = crypto.createHash("sha256").update(JSON.stringify(key)).digest("hex");
  const identity = {
    size: String(s.size),
    mtimeNs: String(s.mtimeNs),
    ino: String(s.ino),
    dev: String(s.dev),
  };
  return { key, file: machineTypesCacheFile(home, hash), identity };
}

/**
 * `binary`'s real path: a path as given, a bare name from PATH as exec finds it (the one read
 * of the environment outside the CLI: not a setting, the search exec itself does).
 */
async function realBinary(binary: string): Promise<string | null> {
  if (binary.includes("/")) return realpath(resolve(binary)).catch(() => null);
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, binary);
    const ok = await access(candidate, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (ok && (await stat(candidate).catch(() => null))?.isFile() === true)
      return realpath(candidate).catch(() => null);
  }
  return null;
}

/** The cached machine types of `found`, or null on any miss (never throws). */
async function readCache(found: Located): Promise<ReadonlySet<string> | null> {
  const bytes = await readFile(found.file).catch(() => null);
  if (bytes === null || bytes.byteLength > MACHINE_TYPES_CACHE_BYTES_MAX) return null;
  let file: Partial<CacheFile>;
  try {
    file = JSON.parse(bytes.toString("utf8")) as Partial<CacheFile>;
  } catch {
    return null;
  }
  const ok =
    typeof file === "object" &&
    file !== null &&
    file.version === CACHE_VERSION &&
    JSON.stringify(file.install) === JSON.stringify(found.key) &&
    JSON.stringify(file.identity) === JSON.stringify(found.identity) &&
    Array.isArray(file.machines) &&
    file.machines.length > 0 &&
    file.machines.every((m) => typeof m === "string" && m !== "");
  return ok ? new Set(file.machines) : null;
}

/** Caches `names` for `found`; best-effort (a failure costs the next restore an exec). */
async function writeCache(home: string, found: Located, names: ReadonlySet<string>): Promise<void> {
  const file: CacheFile = {
    version: CACHE_VERSION,
    install: found.key,
    identity: found.identity,
    machines: [...names],
  };
  const temp = `${found.file}.${process.pid}-${crypto.randomBytes(4).toString("hex")}.tmp`;
  try {
    await mkdir(machineTypesCacheDir(home), { recursive: true });
    await writeFile(temp, `${JSON.stringify(file)}\n`);
    await rename(temp, found.file);
  } catch {
    await rm(temp, { force: true }).catch(() => undefined);
  }
}

/** Runs `qemu -machine help`. Throws QemuError quoting QEMU when it cannot run. */
async function askQemu(install: QemuInstall): Promise<ReadonlySet<string>> {
  const args = [...dataDirArgs(install), "-machine", "help"];
  const [program, argv] = qemuCommand(install, install.binary, args);
  const { stdout } = await run(program, argv).catch((error: unknown) => {
    throw new QemuError(
      `Cannot ask ${install.binary} for its machine types (${String(error)}); check the QEMU ` +
        "setting (SNAPWAKE_QEMU or the spec's qemu field)",
      { cause: error },
    );
  });
  // "Supported machines are:" then one "<name>  <description>" per line.
  const names = stdout
    .split("\n")
    .slice(1)
    .map((line) => line.split(/\s+/)[0] ?? "")
    .filter((name) => name !== "");
  return new Set(names);
}
