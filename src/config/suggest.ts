// "Did you mean ...?" for misspelt property names and enum values.

/** The candidate closest to `input`, if one is close enough to be a plausible typo. */
export function closestMatch(input: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, '');
  const a = norm(input);
  let best: string | undefined;
  let bestScore = Infinity;
  for (const candidate of candidates) {
    const b = norm(candidate);
    let score: number;
    if (a === b) score = 0;
    else if (a.length >= 3 && (b.startsWith(a) || a.startsWith(b))) score = 1;
    else {
      const distance = levenshtein(a, b);
      if (distance > Math.max(1, Math.floor(Math.max(a.length, b.length) / 3))) continue;
      score = 1 + distance;
    }
    if (score < bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  return best;
}

export function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
