/**
 * Where a scenario's two cores went, and whether connections waited to be accepted: sampled from
 * /proc once a second (Linux). A soak that fails while the machine is saturated is read
 * differently from one that fails on an idle machine, and a listening socket whose accept queue
 * stays full says that a process's event loop turns too slowly to take new connections (libuv,
 * since 1.45 in Node 20, accepts one connection per turn of the loop).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** CPU time of a process so far, in clock ticks (user + system). */
function ticksOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // The command name may hold spaces: the fields after it are counted from its closing parenthesis.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Busy and total clock ticks of the whole machine. */
function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  // idle and iowait
  return { busy: total - cpu[3]! - (cpu[4] ?? 0), total };
}

/**
 * Accept queue length of each listening TCP socket, by port: `ss` asks the kernel for listening
 * sockets only (reading /proc/net/tcp walks all of them, twenty thousand in the soak, every second).
 */
async function acceptQueues(): Promise<Map<number, number>> {
  const queues = new Map<number, number>();
  const { stdout } = await run('ss', ['-Hltn']).catch(() => ({ stdout: '' }));
  for (const line of stdout.split('\n')) {
    // State Recv-Q Send-Q Local:Port Peer:Port; Recv-Q of a listening socket is its accept queue.
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const port = Number(f[3]!.slice(f[3]!.lastIndexOf(':') + 1));
    queues.set(port, Math.max(queues.get(port) ?? 0, Number(f[1])));
  }
  return queues;
}

/** Process groups to account for, and listening ports to watch, each by a name. */
export interface LoadTargets {
  pids(): Record<string, (number | undefined)[]>;
  ports: Record<string, number[]>;
}

/** A sampler: `stop()` gives each group's share of a core (%, averaged), the rest of the machine's, and each port group's peak accept queue and seconds spent full. */
export function sampleMachineLoad(targets: LoadTargets, backlog = 511): { stop(): Record<string, number> } {
  const startTicks = new Map<number, number>();
  const seen = (pid: number | undefined) => {
    if (pid !== undefined && !startTicks.has(pid)) startTicks.set(pid, ticksOf(pid));
  };
  for (const list of Object.values(targets.pids())) list.forEach(seen);
  const machineStart = machineTicks();
  const lastTicks = new Map<number, number>();
  const peak: Record<string, number> = {};
  const fullSeconds: Record<string, number> = {};
  const timer = setInterval(() => {
    for (const list of Object.values(targets.pids()))
      for (const pid of list) {
        seen(pid);
        if (pid !== undefined) lastTicks.set(pid, Math.max(lastTicks.get(pid) ?? 0, ticksOf(pid)));
      }
    void acceptQueues().then((queues) => {
      for (const [name, ports] of Object.entries(targets.ports)) {
        const worst = Math.max(0, ...ports.map((p) => queues.get(p) ?? 0));
        peak[name] = Math.max(peak[name] ?? 0, worst);
        if (worst >= backlog) fullSeconds[name] = (fullSeconds[name] ?? 0) + 1;
      }
    });
  }, 1000);
  return {
    stop() {
      clearInterval(timer);
      const machineEnd = machineTicks();
      // The run's length in ticks: the machine's ticks over the run, per core.
      const cpus = readFileSync('/proc/stat', 'utf8')
        .split('\n')
        .filter((l) => /^cpu\d/.test(l)).length;
      const runTicks = (machineEnd.total - machineStart.total) / cpus;
      const out: Record<string, number> = {};
      let accounted = 0;
      for (const [name, list] of Object.entries(targets.pids())) {
        const used = [...new Set(list)].reduce<number>(
          (n, pid) => (pid === undefined ? n : n + (lastTicks.get(pid) ?? 0) - (startTicks.get(pid) ?? 0)),
          0,
        );
        accounted += used;
        out[`cpu${name}Pct`] = Math.round((100 * used) / runTicks);
      }
      out.cpuRestPct = Math.round((100 * (machineEnd.busy - machineStart.busy - accounted)) / runTicks);
      out.cpuMachineBusyPct = Math.round((100 * (machineEnd.busy - machineStart.busy)) / (machineEnd.total - machineStart.total));
      for (const name of Object.keys(targets.ports)) {
        out[`acceptQueuePeak${name}`] = peak[name] ?? 0;
        out[`acceptQueueFullSeconds${name}`] = fullSeconds[name] ?? 0;
      }
      return out;
    },
  };
}
