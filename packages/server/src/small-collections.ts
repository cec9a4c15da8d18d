/**
 * A set and a map that keep their only element in fields of their own and make a `Set` or `Map`
 * from the second element on. Most of a node's per-channel tables hold one element: a user's own
 * channel has that user's one session, in its presence one user, on the embedded bus one node. An
 * empty `Set` or `Map` costs about 150 bytes of heap (the object and its smallest hash table), one
 * of these about 20; with several such tables per connection, that is much of what an idle
 * connection costs beside its socket.
 *
 * Iteration order is insertion order, as for `Set` and `Map`. A set that shrinks back to one
 * element keeps it in its field again.
 */

/** A `Set` of objects that holds a single member without a hash table. */
export class SmallSet<T extends object> implements Iterable<T> {
  private one: T | undefined = undefined;
  private many: Set<T> | undefined = undefined;

  get size(): number {
    return this.many ? this.many.size : this.one === undefined ? 0 : 1;
  }

  has(member: T): boolean {
    return this.many ? this.many.has(member) : this.one === member;
  }

  /** The member, when there is exactly one: a hot path's way round the iterator. */
  get only(): T | undefined {
    return this.many ? undefined : this.one;
  }

  add(member: T): this {
    if (this.many) this.many.add(member);
    else if (this.one === undefined || this.one === member) this.one = member;
    else {
      this.many = new Set([this.one, member]);
      this.one = undefined;
    }
    return this;
  }

  /** Removes `member`; false when it was not in the set. */
  delete(member: T): boolean {
    const many = this.many;
    if (!many) {
      if (this.one !== member) return false;
      this.one = undefined;
      return true;
    }
    if (!many.delete(member)) return false;
    if (many.size === 1) {
      // An iteration under way goes on over `many`, which still holds what it had.
      this.one = many.values().next().value;
      this.many = undefined;
    }
    return true;
  }

  [Symbol.iterator](): Iterator<T> {
    if (this.many) return this.many.values();
    return (this.one === undefined ? [] : [this.one]).values();
  }
}

/** A `Map` that holds a single entry without a hash table. */
export class SmallMap<K, V> implements Iterable<[K, V]> {
  private key: K | undefined = undefined;
  private value: V | undefined = undefined;
  private holds = false;
  private many: Map<K, V> | undefined = undefined;

  get size(): number {
    return this.many ? this.many.size : this.holds ? 1 : 0;
  }

  get(key: K): V | undefined {
    if (this.many) return this.many.get(key);
    return this.holds && this.key === key ? this.value : undefined;
  }

  has(key: K): boolean {
    return this.many ? this.many.has(key) : this.holds && this.key === key;
  }

  set(key: K, value: V): this {
    if (this.many) this.many.set(key, value);
    else if (!this.holds || this.key === key) {
      this.key = key;
      this.value = value;
      this.holds = true;
    } else {
      this.many = new Map([
        [this.key as K, this.value as V],
        [key, value],
      ]);
      this.clearOne();
    }
    return this;
  }

  /** Removes `key`'s entry; false when there was none. */
  delete(key: K): boolean {
    const many = this.many;
    if (!many) {
      if (!this.holds || this.key !== key) return false;
      this.clearOne();
      return true;
    }
    if (!many.delete(key)) return false;
    if (many.size === 1) {
      const [k, v] = many.entries().next().value as [K, V];
      this.key = k;
      this.value = v;
      this.holds = true;
      this.many = undefined;
    }
    return true;
  }

  values(): IterableIterator<V> {
    if (this.many) return this.many.values();
    return (this.holds ? [this.value as V] : []).values();
  }

  [Symbol.iterator](): Iterator<[K, V]> {
    if (this.many) return this.many.entries();
    return (this.holds ? [[this.key as K, this.value as V] as [K, V]] : []).values();
  }

  private clearOne(): void {
    this.key = undefined;
    this.value = undefined;
    this.holds = false;
  }
}
