// Primality for Maglev table sizes (at most a few million: trial division is plenty).
export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  if (n % 3 === 0) return n === 3;
  for (let d = 5; d * d <= n; d += 6) {
    if (n % d === 0 || n % (d + 2) === 0) return false;
  }
  return true;
}

/** The largest prime below n and the smallest above it, within [min, max]. */
export function nearestPrimes(n: number, min: number, max: number): number[] {
  const out: number[] = [];
  for (let p = Math.min(n - 1, max); p >= min; p--) {
    if (isPrime(p)) {
      out.push(p);
      break;
    }
  }
  for (let p = Math.max(n + 1, min); p <= max; p++) {
    if (isPrime(p)) {
      out.push(p);
      break;
    }
  }
  return out;
}
