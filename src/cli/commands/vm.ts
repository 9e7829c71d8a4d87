/** `snapwake vm start|ls|stop`: managed QEMU VMs. */
import { listVms, loadVmSpec, startVm, stopVm } from "../../vm/index.ts";
import type { Run } from "./index.ts";

export const runVmStart: Run = async (ctx, p) => {
  const loaded = await loadVmSpec(p.arg(0));
  const name = p.str("name");
  const named = name === undefined ? loaded : { ...loaded, name };
  const qemu = named.qemu ?? ctx.qemu();
  const spec = qemu === undefined ? named : { ...named, qemu };
  const vm = await startVm(ctx.home, spec, { paused: p.flag("paused") });
  vm.qmp.close();
  const out = { name: vm.name, pid: vm.pid, stateDir: vm.stateDir, agentSocket: vm.agentSocket };
  ctx.result(out, `started VM "${vm.name}" (pid ${vm.pid}); state in ${vm.stateDir}`);
};

export const runVmLs: Run = async (ctx) => {
  const vms = await listVms(ctx.home);
  const rows = vms.map(
    (v) =>
      `${v.name.padEnd(24)} ${String(v.pid).padEnd(8)} ${v.alive ? (v.status ?? "running?") : "dead"}`,
  );
  ctx.result(
    vms,
    vms.length === 0
      ? "no managed VMs"
      : [`${"NAME".padEnd(24)} ${"PID".padEnd(8)} STATUS`, ...rows].join("\n"),
  );
};

export const runVmStop: Run = async (ctx, p) => {
  await stopVm(ctx.home, p.arg(0));
  ctx.result({ stopped: p.arg(0) }, `stopped VM "${p.arg(0)}"`);
};
