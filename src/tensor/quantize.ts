// Fine-grained FP8 quantisation as in DeepSeek-V3 (FACTS.md §6): activations per 1×T tile (one row, T
// consecutive columns), weights per T×T block, one f32 scale per tile/block = amax/448, so the largest
// element of each group maps to ±448. Ragged last tiles/blocks cover fewer elements (token counts need not be
// multiples of T). The matrix is row-major [rows, cols].

import { moemuError } from '../errors.js';
import { E4M3_MAX, E4M3_VALUES, encodeE4M3 } from './e4m3.js';

export interface Fp8Tiles {
  codes: Uint8Array; // [rows, cols] E4M3 codes
  scales: Float32Array; // 'tile': [rows, ceil(cols/tile)]; 'block': [ceil(rows/tile), ceil(cols/tile)]
  rows: number;
  cols: number;
  tile: number;
  layout: 'tile' | 'block';
}

export interface QuantizeOptions {
  /** Round each scale up to a power of two (FP8 dispatch), so rescaling is exact. Default false. */
  powerOfTwoScale?: boolean;
}

/** Quantises x [rows, cols] per 1×tile tile. */
export function quantizeTiles(
  x: Float32Array | Float64Array,
  rows: number,
  cols: number,
  tile: number,
  opts: QuantizeOptions = {},
): Fp8Tiles {
  checkInput('quantizeTiles', x, rows, cols, tile);
  const powerOfTwo = opts.powerOfTwoScale ?? false;
  const tilesPerRow = Math.ceil(cols / tile);
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(rows * tilesPerRow);
  for (let row = 0; row < rows; row++) {
    for (let t = 0; t < tilesPerRow; t++) {
      const start = row * cols + t * tile;
      const end = row * cols + Math.min(cols, (t + 1) * tile);
      const scale = scaleFor(amaxOf(x, start, end), powerOfTwo);
      scales[row * tilesPerRow + t] = scale;
      encodeRange(x, codes, start, end, scale);
    }
  }
  return { codes, scales, rows, cols, tile, layout: 'tile' };
}

/** Quantises x [rows, cols] per tile×tile block. */
export function quantizeBlocks(
  x: Float32Array | Float64Array,
  rows: number,
  cols: number,
  tile: number,
): Fp8Tiles {
  checkInput('quantizeBlocks', x, rows, cols, tile);
  const blockRows = Math.ceil(rows / tile);
  const blockCols = Math.ceil(cols / tile);
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(blockRows * blockCols);
  for (let br = 0; br < blockRows; br++) {
    const rowEnd = Math.min(rows, (br + 1) * tile);
    for (let bc = 0; bc < blockCols; bc++) {
      const colStart = bc * tile;
      const colEnd = Math.min(cols, colStart + tile);
      let amax = 0;
      for (let row = br * tile; row < rowEnd; row++) {
        amax = Math.max(amax, amaxOf(x, row * cols + colStart, row * cols + colEnd));
      }
      const scale = scaleFor(amax, false);
      scales[br * blockCols + bc] = scale;
      for (let row = br * tile; row < rowEnd; row++) {
        encodeRange(x, codes, row * cols + colStart, row * cols + colEnd, scale);
      }
    }
  }
  return { codes, scales, rows, cols, tile, layout: 'block' };
}

/** value = decode(code) · scale, rounded to f32. */
export function dequantize(q: Fp8Tiles, out?: Float32Array): Float32Array {
  checkTiles('dequantize', q);
  const target = out ?? new Float32Array(q.rows * q.cols);
  if (target.length !== q.rows * q.cols) {
    throw moemuError(
      'MOEMU_ERR_SHAPE',
      `dequantize: out has ${target.length} elements, expected rows ${q.rows} × cols ${q.cols}`,
      { op: 'dequantize' },
    );
  }
  const groupCols = Math.ceil(q.cols / q.tile);
  for (let row = 0; row < q.rows; row++) {
    const scaleRow = (q.layout === 'tile' ? row : Math.floor(row / q.tile)) * groupCols;
    for (let col = 0; col < q.cols; col++) {
      const i = row * q.cols + col;
      target[i] = E4M3_VALUES[q.codes[i]] * q.scales[scaleRow + Math.floor(col / q.tile)];
    }
  }
  return target;
}

/** The scale that element (row, col) was quantised with. */
export function scaleAt(q: Fp8Tiles, row: number, col: number): number {
  const inside = Number.isInteger(row) && Number.isInteger(col) && row >= 0 && col >= 0;
  if (!inside || row >= q.rows || col >= q.cols) {
    throw moemuError(
      'MOEMU_ERR_SHAPE',
      `scaleAt: element (${row}, ${col}) is outside [${q.rows}, ${q.cols}]`,
      { op: 'scaleAt' },
    );
  }
  const groupCols = Math.ceil(q.cols / q.tile);
  const scaleRow = q.layout === 'tile' ? row : Math.floor(row / q.tile);
  return q.scales[scaleRow * groupCols + Math.floor(col / q.tile)];
}

// Smallest positive f32 (2⁻¹⁴⁹): a tile whose amax/448 underflows f32 still needs a non-zero scale.
const F32_MIN_SUBNORMAL = Math.fround(1.401298464324817e-45);
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Largest |fround(x)| over [start, end) that is finite in f32: Inf and NaN must not widen the scale. */
function amaxOf(x: Float32Array | Float64Array, start: number, end: number): number {
  let amax = 0;
  for (let i = start; i < end; i++) {
    const magnitude = Math.fround(Math.abs(x[i]));
    if (magnitude > amax && magnitude !== Infinity) amax = magnitude;
  }
  return amax;
}

/** The f32 scale for a group with the given amax (an f32 value); 1 for an all-zero group so its codes are 0. */
function scaleFor(amax: number, powerOfTwo: boolean): number {
  if (amax === 0) return 1;
  const scale = Math.max(Math.fround(amax / E4M3_MAX), F32_MIN_SUBNORMAL);
  if (!powerOfTwo) return scale;
  const power = ceilPowerOfTwo(scale);
  // fround may have rounded amax/448 down onto a power of two: then 448·power < amax, one doubling fixes it.
  // 448·power is exact in f64, so this test is exact.
  return E4M3_MAX * power < amax ? power * 2 : power;
}

/** Smallest power of two ≥ the positive f32 value s, from its bit pattern. */
function ceilPowerOfTwo(s: number): number {
  scratchF32[0] = s;
  const bits = scratchU32[0];
  const exponentBits = bits & 0x7f800000;
  const mantissa = bits & 0x007fffff;
  if (exponentBits === 0) {
    // Subnormal: the value is mantissa·2⁻¹⁴⁹, so the next power of two of the integer mantissa is the bit
    // pattern we want (0x00800000, the smallest normal, included).
    scratchU32[0] = (mantissa & (mantissa - 1)) === 0 ? mantissa : 1 << (32 - Math.clz32(mantissa));
  } else {
    // Normal: clearing the mantissa gives 2^e ≤ s; s is a power of two exactly when the mantissa is 0.
    scratchU32[0] = mantissa === 0 ? exponentBits : exponentBits + 0x00800000;
  }
  return scratchF32[0];
}

function encodeRange(
  x: Float32Array | Float64Array,
  codes: Uint8Array,
  start: number,
  end: number,
  scale: number,
): void {
  for (let i = start; i < end; i++) codes[i] = encodeE4M3(Math.fround(x[i] / scale));
}

function checkInput(
  op: string,
  x: Float32Array | Float64Array,
  rows: number,
  cols: number,
  tile: number,
): void {
  if (!Number.isInteger(tile) || tile < 1) {
    throw moemuError('MOEMU_ERR_SHAPE', `${op}: tile ${tile} is not an integer ≥ 1`, { op });
  }
  checkDims(op, rows, cols);
  if (x.length !== rows * cols) {
    throw moemuError(
      'MOEMU_ERR_SHAPE',
      `${op}: x has ${x.length} elements, expected rows ${rows} × cols ${cols} = ${rows * cols}`,
      { op },
    );
  }
}

function checkDims(op: string, rows: number, cols: number): void {
  const valid = Number.isInteger(rows) && Number.isInteger(cols) && rows >= 0 && cols >= 0;
  if (!valid) {
    throw moemuError('MOEMU_ERR_SHAPE', `${op}: rows ${rows} and cols ${cols} must be integers ≥ 0`, {
      op,
    });
  }
}

function checkTiles(op: string, q: Fp8Tiles): void {
  checkDims(op, q.rows, q.cols);
  const groupRows = q.layout === 'tile' ? q.rows : Math.ceil(q.rows / q.tile);
  const scalesExpected = groupRows * Math.ceil(q.cols / q.tile);
  const valid =
    Number.isInteger(q.tile) &&
    q.tile >= 1 &&
    q.codes.length === q.rows * q.cols &&
    q.scales.length === scalesExpected;
  if (!valid) {
    throw moemuError(
      'MOEMU_ERR_SHAPE',
      `${op}: ${q.layout} quantisation [${q.rows}, ${q.cols}] tile ${q.tile} has ${q.codes.length} codes ` +
        `and ${q.scales.length} scales, expected ${q.rows * q.cols} and ${scalesExpected}`,
      { op },
    );
  }
}

/** The given rows of a 1×T-tiled FP8 matrix (codes and their tile scales), in the order given. */
export function selectTileRows(q: Fp8Tiles, rows: ArrayLike<number>): Fp8Tiles {
  if (q.layout !== 'tile') throw moemuError('MOEMU_ERR_SHAPE', `selectTileRows: needs 1×T tiles, got ${q.layout}`,
    { op: 'selectTileRows' });
  const tilesPerRow = Math.ceil(q.cols / q.tile);
  const codes = new Uint8Array(rows.length * q.cols);
  const scales = new Float32Array(rows.length * tilesPerRow);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    codes.set(q.codes.subarray(r * q.cols, (r + 1) * q.cols), i * q.cols);
    scales.set(q.scales.subarray(r * tilesPerRow, (r + 1) * tilesPerRow), i * tilesPerRow);
  }
  return { codes, scales, rows: rows.length, cols: q.cols, tile: q.tile, layout: 'tile' };
}
