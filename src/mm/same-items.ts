// Element-wise equality of two arrays, for the bookkeeping's copyFrom methods (the stateful checker going back to a
// saved state), which keep what is equal already rather than copy it.

export function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
