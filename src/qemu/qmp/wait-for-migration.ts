/**
 * Polls query-migrate until a migration reaches the state the caller waits for. QEMU reports
 * migration progress only when asked (MIGRATION events need the `events` capability and
 * carry no error text), so polling is the one way that works on both sides of a migration.
 */
import { QemuError } from "../../errors.ts";
import { MIGRATION_POLL_MS, MIGRATION_WAIT_TIMEOUT_MS } from "../../limits.ts";
import type { MigrationInfo } from "./commands.ts";

export interface WaitForMigrationOptions {
  /** Stop waiting when this holds; default: status is "completed". */
  until?: (info: MigrationInfo) => boolean;
  /** Default MIGRATION_WAIT_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Default MIGRATION_POLL_MS. */
  pollMs?: number;
}

/** The first reply of `queryMigrate` for which `until` holds; see QmpClient.waitForMigration. */
export async function pollMigration(
  queryMigrate: () => Promise<MigrationInfo>,
  options: WaitForMigrationOptions,
): Promise<MigrationInfo> {
  const until = options.until ?? ((info: MigrationInfo) => info.status === "completed");
  const timeoutMs = options.timeoutMs ?? MIGRATION_WAIT_TIMEOUT_MS;
  const pollMs = options.pollMs ?? MIGRATION_POLL_MS;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const info = await queryMigrate();
    if (until(info)) return info;
    if (info.status === "failed" || info.status === "cancelled") {
      const why = info["error-desc"] ?? "QEMU gave no reason; see its log";
      throw new QemuError(`Migration ${info.status}: ${why}`);
    }
    if (performance.now() >= deadline) {
      throw new QemuError(
        `Migration did not finish within ${timeoutMs} ms ` +
          `(status ${info.status ?? "none"}, ${info.ram?.transferred ?? 0} bytes sent)`,
      );
    }
    await new Promise<void>((resolve) => setTimeout(resolve, pollMs));
  }
}
