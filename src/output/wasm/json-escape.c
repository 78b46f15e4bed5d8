// SPDX-License-Identifier: GPL-2.0-only
/*
 * JSON string escaping of UTF-8 bytes, compiled to WebAssembly with SIMD (scripts/build-wasm.sh).
 * The jsonl output escapes every captured byte of every call; in JavaScript that costs about 2 ns a
 * byte, here a 16-byte block without anything to escape costs one vector compare.
 *
 * The escapes are exactly JSON.stringify's for a well-formed string: \" \\ \b \t \n \f \r, the other
 * C0 controls as \u00xx (lowercase hex), every other byte as it is.
 */
#include <wasm_simd128.h>

static const unsigned char HEX[16] = "0123456789abcdef";

/* The letter of the short escape of a C0 control, or 0 when it has none (it becomes \u00xx). */
static const unsigned char SHORT_ESCAPE[32] = {
	['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r',
};

static unsigned char *put_escape(unsigned char *out, unsigned char b)
{
	*out++ = '\\';
	if (b >= 0x20) {
		*out++ = b; /* " or \ */
	} else if (SHORT_ESCAPE[b]) {
		*out++ = SHORT_ESCAPE[b];
	} else {
		out[0] = 'u';
		out[1] = '0';
		out[2] = '0';
		out[3] = HEX[b >> 4];
		out[4] = HEX[b & 15];
		out += 5;
	}
	return out;
}

static int needs_escape(unsigned char b)
{
	return b < 0x20 || b == '"' || b == '\\';
}

/* Bit i is set when byte i of the block needs an escape. */
static unsigned escape_mask(v128_t v)
{
	v128_t quote = wasm_i8x16_eq(v, wasm_i8x16_splat('"'));
	v128_t backslash = wasm_i8x16_eq(v, wasm_i8x16_splat('\\'));
	v128_t control = wasm_u8x16_lt(v, wasm_u8x16_splat(0x20));
	return wasm_i8x16_bitmask(wasm_v128_or(wasm_v128_or(quote, backslash), control));
}

/*
 * Writes the escape of src[0, n) to dst and returns its length. dst needs room for 6 * n + 16
 * bytes, and src may be read up to 16 bytes past its end: verbatim runs are moved 16 bytes at a
 * time, and a run's store may spill past it (the next store or escape overwrites the spill).
 */
__attribute__((export_name("json_escape"))) unsigned json_escape(const unsigned char *src,
								   unsigned n, unsigned char *dst)
{
	unsigned char *out = dst;
	unsigned i = 0;

	for (; i + 16 <= n; i += 16) {
		v128_t block = wasm_v128_load(src + i);
		unsigned mask = escape_mask(block);
		unsigned run = 0;

		wasm_v128_store(out, block);
		while (mask) {
			unsigned k = __builtin_ctz(mask);

			mask &= mask - 1;
			wasm_v128_store(out, wasm_v128_load(src + i + run));
			out = put_escape(out + (k - run), src[i + k]);
			run = k + 1;
		}
		if (run > 0)
			wasm_v128_store(out, wasm_v128_load(src + i + run));
		out += 16 - run;
	}
	for (; i < n; i++) {
		if (needs_escape(src[i]))
			out = put_escape(out, src[i]);
		else
			*out++ = src[i];
	}
	return out - dst;
}
