/**
 * The offline advisory list (security/advisories.json), checked against package-lock.json: the
 * registry's audit endpoint does not answer on these machines, so this test stands in for
 * `npm audit`. It fails when the lockfile resolves any copy of an advised package inside the
 * advisory's published vulnerable range, or when a runtime dependency was never reviewed.
 *
 * Versions are compared with a small x.y.z comparer (no semver dependency): a prerelease sorts
 * below its release, so 8.17.1-rc.1 is still inside `<8.17.1`. Ranges are the subset the file
 * uses: comparator sets (`>=a <b`, `<b`, `=a`, bare `a`) joined by `||`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const root = new URL('../../../', import.meta.url);
const readJson = (path: string): unknown => JSON.parse(readFileSync(new URL(path, root), 'utf8'));

interface Advisory {
  id: string;
  cve?: string;
  package: string;
  title: string;
  vulnerable: string;
  fixed: string | string[];
  source: string;
}
interface AdvisoryFile {
  note: string;
  lastReviewed: string;
  advisories: Advisory[];
  excluded?: { id: string; package: string; reason: string }[];
  reviewed: string[];
}
interface LockEntry {
  name?: string;
  version?: string;
  link?: boolean;
  resolved?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}
interface Lockfile {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}
interface Finding {
  advisory: string;
  package: string;
  path: string;
  installed: string;
  upgradeTo: string;
}

// ---- versions and ranges ------------------------------------------------------------------------

const VERSION = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-.]+)?$/;
interface Version {
  nums: [number, number, number];
  pre: string[];
}

function parseVersion(text: string): Version | undefined {
  const m = VERSION.exec(text);
  if (!m) return undefined;
  return { nums: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] ? m[4].split('.') : [] };
}

function mustParse(text: string): Version {
  const v = parseVersion(text);
  if (!v) throw new Error(`not an x.y.z version: ${text}`);
  return v;
}

/** Negative when a < b, 0 when equal, positive when a > b (build metadata ignored). */
function compareVersions(a: string, b: string): number {
  const x = mustParse(a);
  const y = mustParse(b);
  for (let i = 0; i < 3; i++) if (x.nums[i] !== y.nums[i]) return x.nums[i]! - y.nums[i]!;
  if (x.pre.length === 0 || y.pre.length === 0) return y.pre.length - x.pre.length; // release > prerelease
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return Number(p) - Number(q);
    if (pn !== qn) return pn ? -1 : 1; // numeric identifiers sort first
    return p < q ? -1 : 1;
  }
  return 0;
}

interface Comparator {
  op: '<' | '<=' | '>' | '>=' | '=';
  version: string;
}

/** `>=8.0.0 <8.17.1 || >=7.0.0 <7.5.10` into comparator sets; throws on anything else. */
function parseRange(range: string): Comparator[][] {
  return range.split('||').map((set) => {
    const parts = set.trim().split(/\s+/).filter(Boolean);
    if (parts.length === 0) throw new Error(`empty comparator set in "${range}"`);
    return parts.map((part) => {
      const m = /^(<=|>=|<|>|=)?(.+)$/.exec(part)!;
      const version = m[2]!;
      if (!parseVersion(version)) throw new Error(`bad version "${version}" in "${range}"`);
      return { op: (m[1] ?? '=') as Comparator['op'], version };
    });
  });
}

function satisfies(version: string, range: string): boolean {
  return parseRange(range).some((set) =>
    set.every(({ op, version: bound }) => {
      const c = compareVersions(version, bound);
      return op === '<' ? c < 0 : op === '<=' ? c <= 0 : op === '>' ? c > 0 : op === '>=' ? c >= 0 : c === 0;
    }),
  );
}

const fixedList = (a: Advisory): string[] => (Array.isArray(a.fixed) ? a.fixed : [a.fixed]);

/** The fix to move to from `installed`: the lowest fixed version above it on its major line, else the lowest above it. */
function upgradeTarget(a: Advisory, installed: string): string {
  const above = fixedList(a)
    .filter((f) => compareVersions(f, installed) > 0)
    .sort(compareVersions);
  const major = mustParse(installed).nums[0];
  return above.find((f) => mustParse(f).nums[0] === major) ?? above[0] ?? '(no fixed version listed)';
}

// ---- the lockfile ------------------------------------------------------------------------------

/** The package name of a lockfile entry: `node_modules/a/node_modules/@s/b` is `@s/b`. */
function entryName(path: string, entry: LockEntry): string | undefined {
  const i = path.lastIndexOf('node_modules/');
  if (i < 0) return undefined;
  return entry.name ?? path.slice(i + 'node_modules/'.length);
}

/** Every installed copy of every package advised against whose version is inside the vulnerable range. */
function findVulnerableCopies(lock: Lockfile, advisories: Advisory[]): Finding[] {
  const findings: Finding[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (entry.link) continue;
    const name = entryName(path, entry);
    if (!name) continue;
    for (const advisory of advisories.filter((a) => a.package === name)) {
      const installed = entry.version ?? '(none)';
      if (!parseVersion(installed)) {
        findings.push({ advisory: advisory.id, package: name, path, installed, upgradeTo: 'a registry x.y.z version' });
      } else if (satisfies(installed, advisory.vulnerable)) {
        findings.push({ advisory: advisory.id, package: name, path, installed, upgradeTo: upgradeTarget(advisory, installed) });
      }
    }
  }
  return findings;
}

/** Node's lookup: `dep` as required from the package at `from` (a lockfile key). */
function resolve(lock: Lockfile, from: string, dep: string): string | undefined {
  let base = from;
  for (;;) {
    const key = `${base ? `${base}/` : ''}node_modules/${dep}`;
    if (lock.packages[key]) return key;
    if (!base) return undefined;
    const i = base.lastIndexOf('/node_modules/');
    base = i < 0 ? '' : base.slice(0, i);
  }
}

/**
 * The names of the registry packages that run in production: the dependencies of the workspace
 * packages, transitively (optional dependencies that are installed and required peers included),
 * the workspace packages themselves left out. `unresolved` lists required dependencies the lockfile lacks.
 */
function runtimeClosure(lock: Lockfile, workspaces: string[]): { names: Set<string>; unresolved: string[] } {
  const names = new Set<string>();
  const unresolved: string[] = [];
  const seen = new Set<string>();
  const queue = [...workspaces];
  while (queue.length > 0) {
    const key = queue.pop()!;
    if (seen.has(key)) continue;
    seen.add(key);
    const entry = lock.packages[key]!;
    const required = { ...entry.dependencies };
    for (const peer of Object.keys(entry.peerDependencies ?? {})) {
      if (!entry.peerDependenciesMeta?.[peer]?.optional) required[peer] = '*';
    }
    const deps = [
      ...Object.keys(required).map((d) => [d, true] as const),
      ...Object.keys(entry.optionalDependencies ?? {}).map((d) => [d, false] as const),
    ];
    for (const [dep, mustExist] of deps) {
      let target = resolve(lock, key, dep);
      if (!target) {
        if (mustExist) unresolved.push(`${dep} (required by ${key})`);
        continue;
      }
      const found = lock.packages[target]!;
      if (found.link && found.resolved)
        target = found.resolved; // a workspace package: walk it, don't list it
      else names.add(entryName(target, found)!);
      queue.push(target);
    }
  }
  return { names, unresolved };
}

const describeFindings = (findings: Finding[]) =>
  findings.map((f) => `${f.path} is ${f.package}@${f.installed}, inside ${f.advisory}: upgrade to >= ${f.upgradeTo}`).join('\n');

// ---- the checks --------------------------------------------------------------------------------

const file = readJson('security/advisories.json') as AdvisoryFile;
const lock = readJson('package-lock.json') as Lockfile;
const WORKSPACES = ['packages/protocol', 'packages/client', 'packages/server'];
const manifests = WORKSPACES.map((dir) => readJson(`${dir}/package.json`) as { name: string; dependencies?: Record<string, string> });
const workspaceNames = new Set(manifests.map((m) => m.name));

describe('security advisories (security/advisories.json)', () => {
  it('the lockfile resolves every advised package at or above its fix', () => {
    assert.equal(lock.lockfileVersion, 3, 'package-lock.json is lockfileVersion 3');
    const findings = findVulnerableCopies(lock, file.advisories);
    assert.deepEqual(findings, [], `vulnerable copies in package-lock.json:\n${describeFindings(findings)}`);
  });

  it('every advised package is actually looked for: the lockfile has at least one copy of each', () => {
    const installed = new Set(Object.entries(lock.packages).map(([path, entry]) => entryName(path, entry)));
    for (const a of file.advisories) assert.ok(installed.has(a.package), `${a.id}: no copy of ${a.package} in package-lock.json`);
  });

  it('every direct dependency of the protocol, client and server packages was reviewed', () => {
    const reviewed = new Set(file.reviewed);
    const direct = manifests.flatMap((m) => Object.keys(m.dependencies ?? {})).filter((d) => !workspaceNames.has(d));
    const missing = [...new Set(direct)].filter((d) => !reviewed.has(d)).sort();
    assert.deepEqual(missing, [], `add these to "reviewed" in security/advisories.json after checking github.com/advisories`);
  });

  it('every package the runtime loads, transitive ones included, was reviewed', () => {
    const { names, unresolved } = runtimeClosure(lock, WORKSPACES);
    assert.deepEqual(unresolved, [], 'required dependencies missing from package-lock.json');
    const reviewed = new Set(file.reviewed);
    const missing = [...names].filter((n) => !reviewed.has(n)).sort();
    assert.deepEqual(missing, [], `add these to "reviewed" in security/advisories.json after checking github.com/advisories`);
  });

  it('the file says how it is kept and when it was last reviewed', () => {
    assert.match(file.note, /audit endpoint/);
    assert.match(file.note, /every dependency bump/);
    assert.match(file.lastReviewed, /^\d{4}-\d{2}-\d{2}$/);
    assert.ok(file.note.includes(file.lastReviewed), 'the note carries the review date');
    assert.deepEqual(file.reviewed, [...new Set(file.reviewed)].sort(), '"reviewed" is sorted and has no duplicates');
  });

  it('every advisory is well-formed: GHSA id, CVE id, source link, parseable range and fixed versions', () => {
    const ids = new Set<string>();
    for (const a of file.advisories) {
      assert.match(a.id, /^GHSA-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$/, `id ${a.id}`);
      assert.ok(!ids.has(a.id), `${a.id} listed twice`);
      ids.add(a.id);
      if (a.cve !== undefined) assert.match(a.cve, /^CVE-\d{4}-\d{4,}$/, `${a.id}: cve ${a.cve}`);
      assert.equal(a.source, `https://github.com/advisories/${a.id}`, `${a.id}: source`);
      assert.ok(a.title.length > 0 && a.title.length <= 100, `${a.id}: a short title`);
      assert.ok(file.reviewed.includes(a.package), `${a.id}: ${a.package} is in "reviewed"`);
      assert.doesNotThrow(() => parseRange(a.vulnerable), `${a.id}: vulnerable range`);
      const fixed = fixedList(a);
      assert.ok(fixed.length > 0, `${a.id}: at least one fixed version`);
      for (const f of fixed) assert.ok(parseVersion(f), `${a.id}: fixed ${f} is x.y.z`);
    }
    for (const e of file.excluded ?? []) {
      assert.match(e.id, /^GHSA-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$/, `excluded id ${e.id}`);
      assert.ok(!ids.has(e.id), `${e.id} is both listed and excluded`);
    }
  });

  it('each advisory\'s fixed versions close its vulnerable ranges: every "<x" bound is a listed fix and no fix is vulnerable', () => {
    for (const a of file.advisories) {
      const fixed = fixedList(a);
      const upper = parseRange(a.vulnerable).flatMap((set) => set.filter((c) => c.op === '<').map((c) => c.version));
      assert.deepEqual([...upper].sort(compareVersions), [...fixed].sort(compareVersions), `${a.id}: upper bounds of "${a.vulnerable}"`);
      for (const f of fixed) assert.ok(!satisfies(f, a.vulnerable), `${a.id}: fixed ${f} is inside its own vulnerable range`);
    }
  });
});

describe('the advisory check itself', () => {
  const fake = (packages: Record<string, string>): Lockfile => ({
    lockfileVersion: 3,
    packages: {
      '': { name: 'fake', version: '1.0.0' },
      ...Object.fromEntries(Object.entries(packages).map(([k, v]) => [k, { version: v }])),
    },
  });

  it('reports an old ws 8.16.0 with the fix for its line, and leaves a patched nested copy alone', () => {
    const findings = findVulnerableCopies(
      fake({ 'node_modules/ws': '8.16.0', 'node_modules/engine.io/node_modules/ws': '8.23.0' }),
      file.advisories,
    );
    assert.ok(
      findings.some((f) => f.advisory === 'GHSA-3h5v-q93c-6h6q' && f.path === 'node_modules/ws' && f.upgradeTo === '8.17.1'),
      describeFindings(findings),
    );
    assert.deepEqual(
      findings.filter((f) => f.path !== 'node_modules/ws'),
      [],
    );
    assert.deepEqual(findings.map((f) => f.advisory).sort(), ['GHSA-3h5v-q93c-6h6q', 'GHSA-58qx-3vcg-4xpx', 'GHSA-96hv-2xvq-fx4p']);
  });

  it('follows the published ranges, backported minor lines and older majors included', () => {
    const check = (pkg: string, version: string) =>
      findVulnerableCopies(fake({ [`node_modules/${pkg}`]: version }), file.advisories).map((f) => `${f.advisory}>=${f.upgradeTo}`);
    assert.deepEqual(check('pg', '6.1.6'), [], 'pg 6.1.6 is a backported fix even though 6.4.2 is the last 6.x one');
    assert.deepEqual(check('pg', '6.1.5'), ['GHSA-wc9v-mj63-m9g5>=6.1.6']);
    assert.deepEqual(check('pg', '8.4.2'), []);
    assert.deepEqual(check('debug', '3.2.3'), ['GHSA-gxpj-cx7g-858c>=3.2.7'], 'the 3.2.x re-introduction is caught');
    assert.deepEqual(check('jose', '3.5.0').sort(), [
      'GHSA-58f5-hfqc-jgch>=3.11.4',
      'GHSA-hhhv-q57g-882q>=4.15.5',
      'GHSA-jv3g-j58f-9mq9>=3.20.4',
    ]);
    assert.deepEqual(check('jose', '5.0.0'), []);
    assert.deepEqual(check('ws', '1.0.0'), [], 'ws 1.0.0 predates every listed range');
    assert.deepEqual(check('ws', 'github:websockets/ws'), [
      'GHSA-3h5v-q93c-6h6q>=a registry x.y.z version',
      'GHSA-6fc8-4gx4-v693>=a registry x.y.z version',
      'GHSA-96hv-2xvq-fx4p>=a registry x.y.z version',
      'GHSA-58qx-3vcg-4xpx>=a registry x.y.z version',
    ]);
  });

  it('treats a prerelease as lower than its release', () => {
    assert.ok(compareVersions('8.17.1-rc.1', '8.17.1') < 0);
    assert.ok(compareVersions('8.17.1-rc.2', '8.17.1-rc.10') < 0);
    assert.ok(compareVersions('8.17.1-alpha', '8.17.1-beta') < 0);
    assert.ok(compareVersions('8.17.1-1', '8.17.1-alpha') < 0);
    assert.ok(compareVersions('8.17.1+build.5', '8.17.1') === 0);
    assert.ok(compareVersions('8.10.0', '8.9.9') > 0);
    assert.ok(satisfies('8.17.1-rc.1', '>=8.0.0 <8.17.1'));
    assert.ok(!satisfies('8.17.1', '>=8.0.0 <8.17.1'));
  });

  it('finds the packages a workspace loads through nested node_modules and workspace links', () => {
    const lockfile: Lockfile = {
      lockfileVersion: 3,
      packages: {
        '': { name: 'root' },
        'packages/app': { name: 'app', dependencies: { lib: '1', '@me/shared': '1' } },
        'packages/shared': { name: '@me/shared', dependencies: { a: '1' } },
        'node_modules/@me/shared': { link: true, resolved: 'packages/shared' },
        'node_modules/lib': { version: '1.0.0', dependencies: { a: '2' }, optionalDependencies: { gone: '1' } },
        'node_modules/lib/node_modules/a': {
          version: '2.0.0',
          peerDependencies: { b: '1', c: '1' },
          peerDependenciesMeta: { c: { optional: true } },
        },
        'node_modules/a': { version: '1.0.0' },
        'node_modules/b': { version: '1.0.0' },
        'node_modules/devonly': { version: '1.0.0' },
      },
    };
    const { names, unresolved } = runtimeClosure(lockfile, ['packages/app']);
    assert.deepEqual([...names].sort(), ['a', 'b', 'lib']);
    assert.deepEqual(unresolved, []);
  });
});
