// SPDX-License-Identifier: GPL-2.0-only
/*
 * The Internet checksum's sum (RFC 1071) of a packet payload, compiled to WebAssembly with SIMD
 * (scripts/build-wasm.sh) for the pcapng output, where summing in JavaScript cost about 0.3 ns a
 * byte. The 16-bit words are summed in little-endian order, 8 at a time, and the folded sum is
 * byte-swapped at the end: a sum of byte-swapped words is the byte-swapped sum (RFC 1071,
 * "byte order independence").
 */
#include <wasm_simd128.h>

/* 16-byte blocks summed into 32-bit lanes before they are folded: 2^14 * 2 * 65535 < 2^32. */
#define BLOCKS_PER_FOLD 16384

static unsigned long long lanes_sum(v128_t acc)
{
	return (unsigned long long)wasm_u32x4_extract_lane(acc, 0) + wasm_u32x4_extract_lane(acc, 1) +
	       wasm_u32x4_extract_lane(acc, 2) + wasm_u32x4_extract_lane(acc, 3);
}

/*
 * The sum of the big-endian 16-bit words of src[0, n) (an odd last byte padded with zero),
 * folded to 16 bits with end-around carry.
 */
__attribute__((export_name("sum16"))) unsigned sum16(const unsigned char *src, unsigned n)
{
	unsigned long long sum = 0;
	unsigned i = 0;

	while (i + 16 <= n) {
		v128_t acc = wasm_i32x4_splat(0);

		for (unsigned k = 0; k < BLOCKS_PER_FOLD && i + 16 <= n; k++, i += 16)
			acc = wasm_i32x4_add(acc, wasm_u32x4_extadd_pairwise_u16x8(wasm_v128_load(src + i)));
		sum += lanes_sum(acc);
	}
	for (; i + 2 <= n; i += 2)
		sum += src[i] | src[i + 1] << 8;
	if (i < n)
		sum += src[i];
	while (sum > 0xffff)
		sum = (sum & 0xffff) + (sum >> 16);
	return (sum & 0xff) << 8 | sum >> 8;
}
