// DualPipe's equivalence criterion (FACTS §5, DESIGN "Numerics"): 1 − 2Σxy / Σ(x² + y²), in float64; 0 for two
// all-zero arrays. 0 means equal; it grows with the relative squared difference.
export function crit(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let xy = 0;
  let sq = 0;
  for (let i = 0; i < x.length; i++) { xy += x[i] * y[i]; sq += x[i] * x[i] + y[i] * y[i]; }
  return sq === 0 ? 0 : 1 - (2 * xy) / sq;
}
