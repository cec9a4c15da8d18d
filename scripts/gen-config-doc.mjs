#!/usr/bin/env node
// Writes docs/config.md from the option table in packages/server/src/options.ts (via the build),
// so the documented names, flags and defaults are the ones the code uses.
// Usage: npm run build && node scripts/gen-config-doc.mjs [--check]
import { readFileSync, writeFileSync } from 'node:fs';

const { OPTION_SPECS, flagOf } = await import('../packages/server/dist/options.js');
const target = new URL('../docs/config.md', import.meta.url);

const fmt = (v) => (v === undefined ? '—' : Array.isArray(v) ? (v.length ? v.join(',') : '(empty)') : `\`${String(v)}\``);
const rows = Object.entries(OPTION_SPECS).map(
  ([key, spec]) => `| \`${key}\` | \`${spec.env}\` | \`${flagOf(key)}\` | ${fmt(spec.default)} | ${spec.doc.replace(/\|/g, '\\|')} |`,
);
const text = `# Configuration

Every option can be set three ways; the first that is present wins:

1. a command-line flag: \`switchboard node --heartbeat-interval-ms 10000\`;
2. an environment variable: \`SWITCHBOARD_HEARTBEAT_INTERVAL_MS=10000\`;
3. a JSON config file given with \`--config switchboard.json\`, whose keys are the option names:
   \`{"heartbeatIntervalMs": 10000, "allowedOrigins": ["https://app.example.com"]}\`.

Options are validated at start-up. A bad value stops the process with exit code 2 and a message
that names the option, its flag and its environment variable, for example:

\`\`\`
switchboard: invalid option maxPayloadBytes (flag --max-payload-bytes, env SWITCHBOARD_MAX_PAYLOAD_BYTES): Too small: expected number to be >=1024
\`\`\`

Secrets (\`jwtSecret\`, \`apiKey\`) are never written to logs. \`switchboard start\` without a JWT secret
or public key runs in **dev mode**: it makes a secret and an API key for this run, prints them,
and serves \`GET /dev/token?user=U&groups=a,b\` for the demo page. \`switchboard node\` refuses to
start without a secret or public key and never serves the dev endpoint.

This table is generated from \`packages/server/src/options.ts\` by \`node scripts/gen-config-doc.mjs\`;
a test fails when the two differ.

| option | environment | flag | default | meaning |
| --- | --- | --- | --- | --- |
${rows.join('\n')}

## History: what the defaults keep, and what it costs

A client that reconnects resumes from its last message only while the history still holds
everything after it. So the history is bounded by **age** (\`historyTtlMs\`, 5 minutes) and, per
channel, by a count high enough not to be the tighter bound under load (\`historySize\`, 10,000:
10 s of a channel at 1,000 msg/s; a reconnect through the gateway takes well under one). A replay is
read 500 publications at a time and written as fast as the client reads it (each page once the
socket has sent most of the last), up to \`maxRecoveryMessages\` (10,000); so a long replay neither
holds megabytes in the node nor trips the 1 MiB outbound limit of a slow consumer.

Measured on this machine for publications with a 40-byte payload (\`{"text":"hello world 123","n":123}\`):

| store | bytes per kept publication | one channel at \`historySize\` | all channels, 1,000 msg/s for \`historyTtlMs\` |
| --- | --- | --- | --- |
| memory (the embedded engine) | ≈ 224 (V8 heap) | ≈ 2.2 MB | ≈ 67 MB |
| Redis (a stream per channel) | ≈ 132 (\`MEMORY USAGE\`) | ≈ 1.3 MB | ≈ 40 MB |

Bigger payloads cost their size on top. The total is bounded by the cluster's publication rate times
\`historyTtlMs\`, not by the number of channels: lower \`historyTtlMs\` on a busy cluster short of
memory, and keep it above the longest disconnection your clients should survive. With the inbox on,
\`user:\` channels keep \`inboxSize\`/\`inboxRetentionMs\` instead.
`;

if (process.argv.includes('--check')) {
  const current = readFileSync(target, 'utf8');
  if (current !== text) {
    console.error('docs/config.md is out of date: run `node scripts/gen-config-doc.mjs`');
    process.exit(1);
  }
} else {
  writeFileSync(target, text);
  console.log('wrote docs/config.md');
}
