/** `--name value` pairs of a peer server's command line. */
export function peerArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--') && i + 1 < argv.length) out.set(a.slice(2), argv[++i]!);
  }
  return out;
}
