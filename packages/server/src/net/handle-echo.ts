/**
 * The helper process of {@link duplicateListeningHandle}: every handle it receives it sends back
 * (the kernel gives each crossing a new descriptor of the same socket), then closes its own copy.
 * It never listens on one, so it cannot take a connection. Exits when its parent does.
 */
interface Closable {
  close(): void;
}

process.on('message', (message: { id: number }, handle: Closable | undefined) => {
  if (!handle) return;
  process.send!(message, handle as never, {}, () => handle.close());
});
process.on('disconnect', () => process.exit(0));
