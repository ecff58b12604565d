/**
 * CPU time for hang guards in tests. Tests assert that hostile inputs cannot make kho hang or blow up;
 * they bound CPU time (user + system of this process), never wall time, so that a loaded CI machine
 * cannot fail them. Speed itself is measured in bench/, not in tests.
 */
export function cpuStart(): NodeJS.CpuUsage {
  return process.cpuUsage();
}

/** CPU milliseconds since `t0`. */
export function cpuMsSince(t0: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(t0);
  return (u.user + u.system) / 1000;
}
