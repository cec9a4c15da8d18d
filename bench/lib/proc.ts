/**
 * What the servers cost, read from outside them: CPU time from /proc/<pid>/stat (utime + stime)
 * and resident memory from /proc/<pid>/status (VmRSS). Nothing inside a server is asked, so the
 * three systems are measured the same way.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** CPU seconds a process has used, split into user and kernel time. */
export interface CpuTime {
  user: number;
  system: number;
}

/** CPU time of `pid` so far; zero when the process is gone. */
export function cpuTime(pid: number): CpuTime {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const hz = clockTicks();
    return { user: Number(fields[11]) / hz, system: Number(fields[12]) / hz };
  } catch {
    return { user: 0, system: 0 };
  }
}

/** Sum of the CPU time of several processes. */
export function cpuTimes(pids: number[]): CpuTime {
  return pids.map(cpuTime).reduce((a, c) => ({ user: a.user + c.user, system: a.system + c.system }), { user: 0, system: 0 });
}

/** CPU used between two readings. */
export function cpuDelta(before: CpuTime, after: CpuTime): CpuTime {
  return { user: after.user - before.user, system: after.system - before.system };
}

/** Resident set size of `pid` in KiB; NaN when the process is gone. */
export function rssKiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** The machine a report was measured on. */
export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  kernel: string;
  fdLimit: string;
}

export function describeMachine(): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1]!.trim();
  } catch {
    // keep os.cpus()'s answer
  }
  let fdLimit = 'unknown';
  try {
    fdLimit = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  } catch {
    // not fatal
  }
  return {
    cpu,
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: release(),
    fdLimit,
  };
}
