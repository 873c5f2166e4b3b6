// Tile/block FP8 quantisation: scales recomputed here from the definition (amax/448 in f32), the round-trip
// error held to the bound the format implies, the amax element landing exactly on ±448·scale, power-of-two
// scales that never saturate, ragged edges, and the relation between block and tile scales.

import { describe, expect, it } from 'vitest';
import { E4M3_VALUES } from '../../src/tensor/e4m3.js';
import {
  type Fp8Tiles,
  dequantize,
  quantizeBlocks,
  quantizeTiles,
  scaleAt,
} from '../../src/tensor/quantize.js';
import { Rng } from '../../src/tensor/rng.js';

const SHAPE_ERROR = expect.objectContaining({ code: 'MOEMU_ERR_SHAPE' });

/** A [rows, cols] matrix of normals whose rows have very different magnitudes, plus a few outliers. */
function testMatrix(rows: number, cols: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(rows * cols);
  for (let row = 0; row < rows; row++) {
    const rowScale = 2 ** rng.uniform(-20, 20);
    for (let col = 0; col < cols; col++) x[row * cols + col] = rng.normal() * rowScale;
  }
  for (let k = 0; k < 5; k++) x[rng.int(x.length)] *= 1000;
  return x;
}

/** amax of the finite elements of rows [r0, r1) × cols [c0, c1), by plain iteration. */
function amaxOfRegion(
  x: Float32Array,
  cols: number,
  rowRange: [number, number],
  colRange: [number, number],
): number {
  let amax = 0;
  for (let row = rowRange[0]; row < rowRange[1]; row++) {
    for (let col = colRange[0]; col < colRange[1]; col++) {
      const magnitude = Math.abs(x[row * cols + col]);
      if (Number.isFinite(magnitude)) amax = Math.max(amax, magnitude);
    }
  }
  return amax;
}

/**
 * The round-trip bound the format implies, in units of the quantised value q = x/scale: a normal E4M3 value
 * has a 3-bit mantissa, so rounding moves q by at most half an ulp, 2^(e−4) ≤ |q|·2⁻⁴; below 2⁻⁶ the spacing
 * is 2⁻⁹, so at most 2⁻¹⁰. Scaled back: max(|x|·2⁻⁴, scale·2⁻¹⁰). The f32 roundings of x/scale and of
 * code·scale add a relative 2⁻²⁴ each, hence the (1 + 2⁻²⁰) slack.
 */
function errorBound(x: number, scale: number): number {
  return Math.max(Math.abs(x) * 2 ** -4, scale * 2 ** -10) * (1 + 2 ** -20);
}

/** The largest error/bound ratio over all elements; fails on any element past its bound. */
function checkRoundTrip(x: Float32Array, q: Fp8Tiles): number {
  const restored = dequantize(q);
  let ratioMax = 0;
  for (let row = 0; row < q.rows; row++) {
    for (let col = 0; col < q.cols; col++) {
      const i = row * q.cols + col;
      const ratio = Math.abs(x[i] - restored[i]) / errorBound(x[i], scaleAt(q, row, col));
      if (!(ratio <= 1)) expect.fail(`element (${row}, ${col}): ${x[i]} came back as ${restored[i]}`);
      ratioMax = Math.max(ratioMax, ratio);
    }
  }
  return ratioMax;
}

describe('quantizeTiles', () => {
  // 300 = 2·128 + 44: every row ends with a ragged tile.
  const rows = 6;
  const cols = 300;
  const tile = 128;
  const x = testMatrix(rows, cols, 5);
  const q = quantizeTiles(x, rows, cols, tile);

  it('has one scale per row and tile, each amax/448 rounded to f32', () => {
    expect(q.scales.length).toBe(rows * 3);
    expect(q.layout).toBe('tile');
    for (let row = 0; row < rows; row++) {
      for (let t = 0; t < 3; t++) {
        const amax = amaxOfRegion(x, cols, [row, row + 1], [t * tile, Math.min(cols, (t + 1) * tile)]);
        expect(q.scales[row * 3 + t]).toBe(Math.fround(amax / 448));
      }
    }
  });

  it('keeps every element within the format bound, and the bound is nearly reached', () => {
    // Uniform-ish data puts some element close to a rounding midpoint: within a factor 2 of the bound.
    expect(checkRoundTrip(x, q)).toBeGreaterThan(0.5);
  });

  it('maps the amax element of each tile exactly to ±448·scale', () => {
    const restored = dequantize(q);
    for (let row = 0; row < rows; row++) {
      for (let t = 0; t < 3; t++) {
        const start = row * cols + t * tile;
        const tileValues = Array.from(x.subarray(start, row * cols + Math.min(cols, (t + 1) * tile)));
        const magnitudes = tileValues.map(Math.abs);
        const offset = magnitudes.indexOf(Math.max(...magnitudes));
        const scale = q.scales[row * 3 + t];
        expect(q.codes[start + offset] & 0x7f).toBe(0x7e);
        expect(restored[start + offset]).toBe(Math.sign(x[start + offset]) * Math.fround(448 * scale));
      }
    }
  });

  it('gives an all-zero tile scale 1 and zero codes; ±Inf saturate, NaN stays NaN, neither widens the scale', () => {
    // Row 0: [0 0 0 0 | +Inf], row 1: [-Inf NaN 2 -1 | 0.5] (tile 4, so each row ends with a 1-element tile).
    const special = new Float32Array([0, 0, 0, 0, Infinity, -Infinity, NaN, 2, -1, 0.5]);
    const s = quantizeTiles(special, 2, 5, 4);
    expect(Array.from(s.scales)).toEqual([1, 1, Math.fround(2 / 448), Math.fround(0.5 / 448)]);
    expect(Array.from(s.codes.subarray(0, 4))).toEqual([0, 0, 0, 0]);
    expect(s.codes[4]).toBe(0x7e); // +Inf alone: the tile has no finite amax, scale 1, saturates to +448
    expect(s.codes[5]).toBe(0xfe);
    expect(E4M3_VALUES[s.codes[6]]).toBeNaN();
    expect(s.codes[7]).toBe(0x7e); // 2 is the finite amax of its tile
    const restored = dequantize(s);
    expect(Math.abs(restored[8] - -1)).toBeLessThanOrEqual(errorBound(-1, s.scales[2]));
    expect(restored[9]).toBe(Math.fround(448 * s.scales[3]));
  });

  it('quantises a Float64Array like the same values in a Float32Array', () => {
    const q64 = quantizeTiles(Float64Array.from(x), rows, cols, tile);
    expect(q64.scales).toEqual(q.scales);
    expect(q64.codes).toEqual(q.codes);
  });
});

describe('quantizeTiles with power-of-two scales', () => {
  const rows = 4;
  const cols = 200;
  const tile = 64;
  const x = testMatrix(rows, cols, 9);
  const q = quantizeTiles(x, rows, cols, tile, { powerOfTwoScale: true });

  /** Smallest 2^k with 448·2^k ≥ amax, found by stepping k: the definition, not the bit trick. */
  function smallestPowerCovering(amax: number): number {
    let power = 2 ** -149;
    while (448 * power < amax) power *= 2;
    return power;
  }

  it('uses the smallest power of two that covers the amax, so no code saturates', () => {
    const tilesPerRow = Math.ceil(cols / tile);
    for (let row = 0; row < rows; row++) {
      for (let t = 0; t < tilesPerRow; t++) {
        const colEnd = Math.min(cols, (t + 1) * tile);
        const amax = amaxOfRegion(x, cols, [row, row + 1], [t * tile, colEnd]);
        const scale = q.scales[row * tilesPerRow + t];
        expect(scale).toBe(smallestPowerCovering(amax));
        expect(Number.isInteger(Math.log2(scale))).toBe(true);
        expect(amax / scale).toBeLessThanOrEqual(448);
        expect(amax / scale).toBeGreaterThan(224); // half the scale would saturate
      }
    }
    expect(checkRoundTrip(x, q)).toBeGreaterThan(0.5);
  });

  it('handles exact powers, the next f32 above them, and the subnormal scale range', () => {
    const amaxValues = [
      448, // 448/448 = 1 exactly: scale 1
      Math.fround(448 * (1 + 2 ** -23)), // just above: scale 2
      224,
      1e-40, // amax/448 is an f32 subnormal
      // 1.75·2⁻¹³² + 2⁻¹⁴⁹: amax/448 = 2⁻¹⁴⁰ + 2⁻¹⁵⁷·⁸ rounds *down* to 2⁻¹⁴⁰ in f32 (subnormal spacing
      // 2⁻¹⁴⁹), and 448·2⁻¹⁴⁰ < amax: the scale must be 2⁻¹³⁹.
      1.75 * 2 ** -132 + 2 ** -149,
      2 ** -149, // the smallest f32: amax/448 underflows to 0 in f32
    ];
    const single = new Float32Array(amaxValues);
    const p = quantizeTiles(single, amaxValues.length, 1, 1, { powerOfTwoScale: true });
    expect(Array.from(p.scales)).toEqual(Array.from(single, smallestPowerCovering));
    expect(p.scales[4]).toBe(2 ** -139);
    for (const code of p.codes) expect(E4M3_VALUES[code]).toBeLessThanOrEqual(448);
  });
});

describe('quantizeBlocks', () => {
  // 7 × 10 with 4 × 4 blocks: the last block row has 3 rows and the last block column 2 columns.
  const rows = 7;
  const cols = 10;
  const tile = 4;
  const x = testMatrix(rows, cols, 21);
  const blocks = quantizeBlocks(x, rows, cols, tile);
  const tiles = quantizeTiles(x, rows, cols, tile);

  it('has one scale per block: the largest tile scale among the rows it covers', () => {
    // fround(amax/448) is monotone in amax and a block's amax is the max of its tiles' amaxes.
    expect(blocks.layout).toBe('block');
    expect(blocks.scales.length).toBe(2 * 3);
    for (let br = 0; br < 2; br++) {
      for (let bc = 0; bc < 3; bc++) {
        let expected = 0;
        for (let row = br * tile; row < Math.min(rows, (br + 1) * tile); row++) {
          expected = Math.max(expected, tiles.scales[row * 3 + bc]);
        }
        expect(blocks.scales[br * 3 + bc]).toBe(expected);
        expect(scaleAt(blocks, br * tile, bc * tile)).toBe(expected);
      }
    }
  });

  it('keeps every element within the format bound of its block scale', () => {
    expect(checkRoundTrip(x, blocks)).toBeGreaterThan(0.5);
  });

  it('agrees with tiles where a block is one row (tile covers a 1-row matrix)', () => {
    const row = x.subarray(0, cols);
    expect(quantizeBlocks(row, 1, cols, tile).codes).toEqual(quantizeTiles(row, 1, cols, tile).codes);
  });
});

describe('shape validation', () => {
  const x = new Float32Array(12);

  it('rejects bad tiles, dimensions and lengths with MOEMU_ERR_SHAPE', () => {
    expect(() => quantizeTiles(x, 3, 4, 0)).toThrow(SHAPE_ERROR);
    expect(() => quantizeTiles(x, 3, 4, 1.5)).toThrow(SHAPE_ERROR);
    expect(() => quantizeTiles(x, 3, 5, 2)).toThrow(SHAPE_ERROR);
    expect(() => quantizeTiles(x, -3, -4, 2)).toThrow(SHAPE_ERROR);
    expect(() => quantizeBlocks(x, 4, 4, 2)).toThrow(SHAPE_ERROR);
    expect(() => quantizeBlocks(x, 3, 4, -1)).toThrow(SHAPE_ERROR);
  });

  it('rejects an inconsistent Fp8Tiles, a wrong out and an element outside the matrix', () => {
    const q = quantizeTiles(x, 3, 4, 2);
    expect(() => dequantize({ ...q, scales: new Float32Array(5) })).toThrow(SHAPE_ERROR);
    expect(() => dequantize({ ...q, layout: 'block' })).toThrow(SHAPE_ERROR);
    expect(() => dequantize(q, new Float32Array(11))).toThrow(SHAPE_ERROR);
    expect(() => scaleAt(q, 3, 0)).toThrow(SHAPE_ERROR);
    expect(() => scaleAt(q, 0, -1)).toThrow(SHAPE_ERROR);
  });

  it('accepts an empty matrix', () => {
    const q = quantizeTiles(new Float32Array(0), 0, 8, 4);
    expect(q.codes.length).toBe(0);
    expect(dequantize(q).length).toBe(0);
  });
});
