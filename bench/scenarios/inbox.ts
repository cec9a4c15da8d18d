/**
 * Scenario 7, the inbox's cost: the point-to-point workload across two nodes (each sender on node
 * 1, its receiver on node 2; every message goes to `user:<receiver>`) with the inbox off and on,
 * history in Redis and in PostgreSQL. With the inbox on, each message is an inbox publication: kept
 * for the inbox's retention and size instead of the history's. The receivers do not ack (this is the
 * publication's cost, not the acks'). Ratios to the plain Redis row, run by run.
 */
import { rounds, skippedNotes, tabulate, type Scenario } from '../lib/kit.js';
import { switchboardCluster } from '../lib/systems.js';
import { metrics, runOnce } from './p2p.js';

const WHAT =
  "The point-to-point workload of scenario 4 across two nodes, with the inbox off and on (`SWITCHBOARD_INBOX=on`: every message is kept in its recipient's inbox), history in Redis and in PostgreSQL (`SWITCHBOARD_HISTORY=postgres`, the bench's own database on the shared server, which runs nothing else meanwhile). CPU of the nodes includes Redis (presence, registry and broker for every row, history for the Redis rows) and, for the PostgreSQL rows, every PostgreSQL process alive when the phase starts. Receivers do not ack.";

export const inbox: Scenario = {
  name: 'inbox',
  number: 7,
  title: 'Inbox publications',
  async run(ctx) {
    const pairs = ctx.opts.clients ?? (ctx.opts.quick ? 200 : 1000);
    const durationMs = ctx.opts.durationMs ?? (ctx.opts.quick ? 2000 : 10_000);
    const systems = [
      switchboardCluster(2),
      switchboardCluster(2, 'interest', { inbox: true }),
      switchboardCluster(2, 'interest', { history: 'postgres' }),
      switchboardCluster(2, 'interest', { history: 'postgres', inbox: true }),
    ];
    const results = await rounds(ctx, `inbox ${pairs} pairs`, systems, (sys, note) => runOnce(ctx, sys, pairs, durationMs, note));
    if (results.length === 0) return [];
    return [
      tabulate(
        {
          scenario: 'inbox',
          name: 'inbox',
          title: `7. Inbox publications across two nodes, ${pairs.toLocaleString('en')} pairs`,
          what: WHAT,
          size: `${pairs.toLocaleString('en')} pairs, ${durationMs / 1000} s per phase`,
          metrics: metrics('nodes + Redis + PostgreSQL'),
          primary: 'deliveredPerS',
          charts: [{ title: 'Inbox publication latency at 5,000 msg/s', metrics: ['p50', 'p99'], unit: 'ms' }],
          notes: skippedNotes(ctx, systems),
        },
        results,
        () => switchboardCluster(2).id,
      ),
    ];
  },
};
