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
 * Blocks with several escapes, all of the two-byte kind (\" \\ \b \t \n \f \r, the bulk of
 * HTTP and JSON), are expanded with shuffles instead of one escape at a time: for each 8-byte
 * half and its 8-bit escape mask, EXPAND[mask] says which input byte goes to each output byte,
 * MARK where a backslash goes (a swizzle index of 16 or more reads as 0).
 */
#define MARK 0x80

static v128_t EXPAND[256];
static int expand_ready;

static void make_expand(void)
{
	for (unsigned mask = 0; mask < 256; mask++) {
		unsigned char *shuffle = (unsigned char *)&EXPAND[mask];
		unsigned j = 0;

		EXPAND[mask] = wasm_i8x16_splat(MARK);
		for (unsigned i = 0; i < 8; i++) {
			if (mask & (1u << i))
				j++;
			shuffle[j++] = i;
		}
	}
	expand_ready = 1;
}

/* Bit i is set when byte i of the block needs a \u00xx escape (a control without a short form). */
static unsigned long_escape_mask(v128_t v)
{
	v128_t control = wasm_u8x16_lt(v, wasm_u8x16_splat(0x20));
	v128_t short_form = wasm_v128_and(wasm_u8x16_ge(v, wasm_u8x16_splat('\b')),
					  wasm_u8x16_le(v, wasm_u8x16_splat('\r')));
	v128_t vertical_tab = wasm_i8x16_eq(v, wasm_i8x16_splat('\v'));
	return wasm_i8x16_bitmask(wasm_v128_andnot(control, wasm_v128_andnot(short_form, vertical_tab)));
}

/* What follows the backslash for each byte: the byte itself, or a control's letter. */
static v128_t escape_letters(v128_t v)
{
	v128_t letters = wasm_i8x16_make(0, 0, 0, 0, 0, 0, 0, 0, 'b', 't', 'n', 0, 'f', 'r', 0, 0);
	v128_t control = wasm_u8x16_lt(v, wasm_u8x16_splat(0x20));
	return wasm_v128_bitselect(wasm_i8x16_swizzle(letters, v), v, control);
}

/* Writes 8 bytes of `letters` (from byte `first` on) with a backslash before each byte in `mask`. */
static unsigned char *put_expanded(unsigned char *out, v128_t letters, unsigned first, unsigned mask)
{
	v128_t shuffle = wasm_i8x16_add(EXPAND[mask], wasm_i8x16_splat(first));
	v128_t backslashes = wasm_v128_and(wasm_i8x16_lt(shuffle, wasm_i8x16_splat(0)),
					   wasm_i8x16_splat('\\'));

	wasm_v128_store(out, wasm_v128_or(wasm_i8x16_swizzle(letters, shuffle), backslashes));
	return out + 8 + __builtin_popcount(mask);
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

	if (!expand_ready)
		make_expand();
	for (; i + 16 <= n; i += 16) {
		v128_t block = wasm_v128_load(src + i);
		unsigned mask = escape_mask(block);
		unsigned run = 0;

		if (__builtin_popcount(mask) > 1 && long_escape_mask(block) == 0) {
			v128_t letters = escape_letters(block);

			out = put_expanded(out, letters, 0, mask & 0xff);
			out = put_expanded(out, letters, 8, mask >> 8);
			continue;
		}
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
