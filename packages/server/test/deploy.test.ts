/**
 * The deploy files, checked without a cluster or a Docker daemon: `kubectl kustomize` renders the
 * manifests and they say what a rolling restart needs (probes, a grace period above the drain, a
 * disruption budget, non-root); the compose file parses and wires three nodes, the gateway, Redis,
 * RabbitMQ and NATS; the Dockerfile is multi-stage, non-root, health-checked, and hands SIGTERM to
 * node; the Grafana dashboard queries only metrics a running node exposes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { startNode, type TestNode } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8');
const run = promisify(execFile);
const kubectl = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => existsSync(p));
const KUBECTL_MISSING = 'kubectl is not installed (Debian: apt-get install kubectl)';
// In CI a missing kubectl is an error, so a green run always rendered the manifests.
if (!kubectl && process.env.CI === 'true') throw new Error(KUBECTL_MISSING);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = Record<string, any>;

describe('Kubernetes manifests', { skip: kubectl ? undefined : KUBECTL_MISSING }, () => {
  let docs: Doc[] = [];
  before(async () => {
    const { stdout } = await run(kubectl!, ['kustomize', `${ROOT}deploy/k8s`], { timeout: 60_000 });
    docs = parseAllDocuments(stdout).map((d) => d.toJSON() as Doc);
  });
  const find = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name);

  it('render with kustomize into the namespace, with the nodes, the gateway, their services and disruption budgets', () => {
    assert.deepEqual(
      docs.map((d) => `${d.kind}/${d.metadata.name}`).sort(),
      [
        'ConfigMap/' + find('ConfigMap', docs.find((d) => d.kind === 'ConfigMap')!.metadata.name)!.metadata.name,
        'Deployment/redis',
        'Deployment/switchboard-gateway',
        'Deployment/switchboard-node',
        'Namespace/switchboard',
        'PodDisruptionBudget/switchboard-gateway',
        'PodDisruptionBudget/switchboard-node',
        'Secret/' + docs.find((d) => d.kind === 'Secret')!.metadata.name,
        'Service/redis',
        'Service/switchboard',
        'Service/switchboard-node',
      ].sort(),
    );
    for (const d of docs.filter((x) => x.kind !== 'Namespace'))
      assert.equal(d.metadata.namespace, 'switchboard', `${d.kind}/${d.metadata.name}`);
  });

  it('give each node readiness on /readyz, liveness on /healthz, a grace period above the drain, and no root', () => {
    const config = docs.find((d) => d.kind === 'ConfigMap')!.data as Record<string, string>;
    const drainSeconds = Number(config.SWITCHBOARD_DRAIN_TIMEOUT_MS) / 1000;
    for (const name of ['switchboard-node', 'switchboard-gateway']) {
      const pod = find('Deployment', name)!.spec.template.spec;
      const container = pod.containers[0];
      assert.equal(container.readinessProbe.httpGet.path, '/readyz', name);
      assert.equal(container.livenessProbe.httpGet.path, '/healthz', name);
      assert.ok(
        pod.terminationGracePeriodSeconds > drainSeconds,
        `${name}: grace ${pod.terminationGracePeriodSeconds} s > drain ${drainSeconds} s`,
      );
      assert.equal(pod.securityContext.runAsNonRoot, true, name);
      assert.match(container.image, /switchboard/);
      const from = container.envFrom.map((e: Doc) => e.configMapRef?.name ?? e.secretRef?.name);
      assert.ok(from.includes(docs.find((d) => d.kind === 'Secret')!.metadata.name), `${name} reads the generated secret`);
    }
    const node = find('Deployment', 'switchboard-node')!.spec.template.spec.containers[0];
    assert.deepEqual(node.args, ['node']);
    assert.ok(
      node.env.some((e: Doc) => e.name === 'SWITCHBOARD_PUBLIC_URL'),
      'nodes register a URL the gateway can reach',
    );
    assert.equal(find('PodDisruptionBudget', 'switchboard-node')!.spec.maxUnavailable, 1);
    assert.equal(config.SWITCHBOARD_ENGINE, 'redis');
  });
});

describe('compose file', () => {
  const compose = parse(read('deploy/compose.yaml'), { merge: true }) as Doc;

  it('parses and runs three nodes on Redis behind the gateway, with RabbitMQ and NATS', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['gateway', 'nats', 'node1', 'node2', 'node3', 'rabbitmq', 'redis']);
    for (const id of ['node1', 'node2', 'node3']) {
      const node = compose.services[id];
      assert.deepEqual(node.command, ['node']);
      assert.equal(node.environment.SWITCHBOARD_ENGINE, 'redis');
      assert.equal(node.environment.SWITCHBOARD_NODE_ID, id);
      assert.equal(node.environment.SWITCHBOARD_PUBLIC_URL, `http://${id}:8080`);
      assert.equal(node.build.dockerfile, 'deploy/Dockerfile');
      assert.ok(parseInt(node.stop_grace_period, 10) > 10, 'stop grace above the 10 s drain');
    }
    assert.deepEqual(compose.services.gateway.command, ['gateway']);
    assert.deepEqual(compose.services.gateway.ports, ['8080:8080']);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('deploy/Dockerfile');
  const instructions = dockerfile.split('\n').filter((l) => /^[A-Z]+ /.test(l));

  it('builds in two stages and runs as a non-root user, health-checked, with node receiving SIGTERM', () => {
    assert.equal(instructions.filter((l) => l.startsWith('FROM ')).length, 2, 'multi-stage');
    assert.ok(
      instructions.some((l) => l.startsWith('FROM node:20')),
      'Node 20, as the project supports',
    );
    const user = instructions.filter((l) => l.startsWith('USER ')).at(-1);
    assert.ok(user && !/USER (root|0)\b/.test(user), `non-root: ${user}`);
    assert.match(dockerfile, /HEALTHCHECK[\s\S]*\/healthz/);
    assert.match(
      dockerfile,
      /^ENTRYPOINT \["node", "packages\/server\/bin\/switchboard\.js"\]$/m,
      'exec form: node is PID 1 and gets SIGTERM',
    );
    assert.ok(existsSync(`${ROOT}.dockerignore`), '.dockerignore keeps node_modules out of the context');
  });
});

describe('Grafana dashboard', () => {
  let node: TestNode;
  before(async () => (node = await startNode({})));
  after(() => node.stop());

  it('queries only metrics a running node exposes', async () => {
    const dashboard = JSON.parse(read('deploy/grafana/switchboard.json')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const exposed = await (await fetch(`${node.url}/metrics`)).text();
    // Samples, and the `# TYPE` line of a labelled counter that has no sample yet.
    const names = new Set([...exposed.matchAll(/^(?:# TYPE )?([a-z_:][a-z0-9_:]*)(?:\{| )/gm)].map((m) => m[1]!));
    const queried = new Set<string>();
    for (const panel of dashboard.panels) {
      assert.ok(panel.targets.length > 0, `${panel.title} has a query`);
      for (const { expr } of panel.targets) for (const m of expr.matchAll(/\bswitchboard_[a-z0-9_]+/g)) queried.add(m[0]);
    }
    assert.ok(queried.size >= 15, `${queried.size} metrics queried`);
    const missing = [...queried].filter((name) => !names.has(name));
    assert.deepEqual(missing, [], 'every metric the dashboard queries is on /metrics');
  });
});
