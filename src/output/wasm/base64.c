// SPDX-License-Identifier: GPL-2.0-only
/*
 * Base64 encoding (RFC 4648, standard alphabet, '=' padding) compiled to WebAssembly with SIMD
 * (scripts/build-wasm.sh). The jsonl output encodes every byte of every call that is not UTF-8;
 * Buffer.toString('base64') makes a string per call that then has to be copied into the output
 * and collected. Here 12 input bytes become 16 output bytes per step, after Wojciech Muła and
 * Daniel Lemire, "Faster Base64 Encoding and Decoding using AVX2 Instructions" (2018).
 */
#include <wasm_simd128.h>

static const unsigned char ALPHABET[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * The 6-bit indices of 12 bytes (in bytes 0..11 of v) as 16 bytes. Each group of 3 bytes b0 b1 b2
 * is first spread over a 32-bit lane as b1 b0 b2 b1, so that its 16-bit halves are b0:b1 and
 * b1:b2 (high:low); the even half holds the first two indices, the odd half the last two.
 */
static v128_t indices(v128_t v)
{
	v128_t in = wasm_i8x16_swizzle(v, wasm_i8x16_make(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9,
							  11, 10));
	v128_t six = wasm_i16x8_splat(63);
	/* Even halves: b0 >> 2 in the low byte, ((b0:b1) >> 4) & 63 in the high byte. */
	v128_t first = wasm_v128_or(wasm_u16x8_shr(in, 10),
				    wasm_i16x8_shl(wasm_v128_and(wasm_u16x8_shr(in, 4), six), 8));
	/* Odd halves: ((b1:b2) >> 6) & 63 in the low byte, b2 & 63 in the high byte. */
	v128_t last = wasm_v128_or(wasm_v128_and(wasm_u16x8_shr(in, 6), six),
				   wasm_i16x8_shl(wasm_v128_and(in, six), 8));
	v128_t even = wasm_i32x4_splat(0x0000ffff);
	return wasm_v128_bitselect(first, last, even);
}

/*
 * The alphabet's letter for each 6-bit index: the index plus an offset that depends only on its
 * range (A-Z, a-z, 0-9, +, /), the offset looked up by a small range number.
 */
static v128_t letters(v128_t idx)
{
	/* 0 for 26..51, 1..12 for 52..63, then 13 for 0..25. */
	v128_t range = wasm_u8x16_sub_sat(idx, wasm_i8x16_splat(51));
	v128_t upper = wasm_u8x16_lt(idx, wasm_i8x16_splat(26));
	range = wasm_v128_or(range, wasm_v128_and(upper, wasm_i8x16_splat(13)));
	v128_t offsets = wasm_i8x16_make('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
					 '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62,
					 '/' - 63, 'A', 0, 0);
	return wasm_i8x16_add(wasm_i8x16_swizzle(offsets, range), idx);
}

/*
 * Writes the base64 of src[0, n) to dst and returns its length, 4 * ceil(n / 3). src may be read
 * up to 4 bytes past its end (each step loads 16 bytes and uses 12).
 */
__attribute__((export_name("base64_encode"))) unsigned base64_encode(const unsigned char *src,
								     unsigned n, unsigned char *dst)
{
	unsigned char *out = dst;
	unsigned i = 0;

	for (; i + 12 <= n; i += 12) {
		wasm_v128_store(out, letters(indices(wasm_v128_load(src + i))));
		out += 16;
	}
	for (; i + 3 <= n; i += 3) {
		unsigned group = src[i] << 16 | src[i + 1] << 8 | src[i + 2];

		out[0] = ALPHABET[group >> 18];
		out[1] = ALPHABET[(group >> 12) & 63];
		out[2] = ALPHABET[(group >> 6) & 63];
		out[3] = ALPHABET[group & 63];
		out += 4;
	}
	if (i < n) {
		unsigned group = src[i] << 16 | (i + 1 < n ? src[i + 1] << 8 : 0);

		out[0] = ALPHABET[group >> 18];
		out[1] = ALPHABET[(group >> 12) & 63];
		out[2] = i + 1 < n ? ALPHABET[(group >> 6) & 63] : '=';
		out[3] = '=';
		out += 4;
	}
	return out - dst;
}
