/**
 * A simulated machine: a validated spec, its firmware layout, and sparse physical memory whose
 * contents survive a kexec (warm: nothing touches memory) and are lost on a power cycle (cold).
 *
 * Contract: `Machine.create(input)` validates (`SIM_BAD_SPEC`) and builds the layout; `memory` accepts
 * any address below the top of RAM (`SIM_BAD_ADDRESS` beyond); `powerCycle()` clears all contents and
 * counts power cycles. The kernel model (memblock, buddy, KHO) lives in `src/sim/kernel/` and only reads
 * `layout` and uses `memory`.
 */
import { buildLayout, type MachineLayout, type NumaNode, type RamRange } from './firmware.ts';
import { PhysicalMemory } from './memory.ts';
import { type MachineSpec, type MachineSpecInput, resolveMachineSpec } from './spec.ts';

export class Machine {
  readonly spec: MachineSpec;
  readonly layout: MachineLayout;
  readonly memory: PhysicalMemory;
  private cycles = 0;

  private constructor(spec: MachineSpec) {
    this.spec = spec;
    this.layout = buildLayout(spec);
    this.memory = new PhysicalMemory(spec.pageSize, this.layout.ramTop);
  }

  static create(input: MachineSpecInput): Machine {
    return new Machine(resolveMachineSpec(input));
  }

  get nodes(): readonly NumaNode[] {
    return this.layout.nodes;
  }

  /** memblock.memory as the kernel builds it from the firmware map. */
  get ram(): readonly RamRange[] {
    return this.layout.ram;
  }

  /** Number of power cycles so far (0 for a machine that was only switched on). */
  get powerCycles(): number {
    return this.cycles;
  }

  /** Switch off and on again: DRAM contents are lost. */
  powerCycle(): void {
    this.memory.clear();
    this.cycles++;
  }

  /** The node whose range holds `addr`, or undefined. */
  nodeOf(addr: bigint): number | undefined {
    return this.layout.nodes.find((n) => addr >= n.start && addr < n.end)?.nid;
  }

  /** Whether `[addr, addr+len)` is all usable RAM (adjacent ranges, e.g. of two nodes, count as one). */
  isRam(addr: bigint, len: bigint): boolean {
    let cursor = addr;
    const end = addr + len;
    for (const r of this.layout.ram) {
      if (r.end <= cursor) continue;
      if (r.start > cursor) return false;
      cursor = r.end;
      if (cursor >= end) return true;
    }
    return cursor >= end && len >= 0n;
  }
}
