// A min-heap of due times: the scheduler keeps one timer, armed for the earliest entry, instead
// of one timer per backend.

export interface Scheduled {
  /** performance.now() at which the entry is due. */
  dueAt: number;
  /** Position in the heap; -1 when not queued. */
  heapIndex: number;
}

export class DueQueue<T extends Scheduled> {
  private readonly heap: T[] = [];

  get size(): number {
    return this.heap.length;
  }

  peek(): T | undefined {
    return this.heap[0];
  }

  /** Queues `item` at `dueAt`, or moves it there if it is queued already. */
  schedule(item: T, dueAt: number): void {
    if (item.heapIndex >= 0) this.remove(item);
    item.dueAt = dueAt;
    item.heapIndex = this.heap.length;
    this.heap.push(item);
    this.up(item.heapIndex);
  }

  /** The earliest entry if it is due at `now`, taken out of the queue. */
  popDue(now: number): T | undefined {
    const top = this.heap[0];
    if (top === undefined || top.dueAt > now) return undefined;
    this.remove(top);
    return top;
  }

  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0) return;
    const last = this.heap.pop() as T;
    item.heapIndex = -1;
    if (last === item) return;
    this.heap[i] = last;
    last.heapIndex = i;
    this.down(i);
    this.up(last.heapIndex);
  }

  clear(): void {
    for (const item of this.heap) item.heapIndex = -1;
    this.heap.length = 0;
  }

  private up(i: number): void {
    const heap = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const a = heap[i] as T;
      const b = heap[parent] as T;
      if (b.dueAt <= a.dueAt) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const heap = this.heap;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && (heap[left] as T).dueAt < (heap[smallest] as T).dueAt) smallest = left;
      if (right < heap.length && (heap[right] as T).dueAt < (heap[smallest] as T).dueAt) smallest = right;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i] as T;
    const b = this.heap[j] as T;
    this.heap[i] = b;
    this.heap[j] = a;
    a.heapIndex = j;
    b.heapIndex = i;
  }
}
