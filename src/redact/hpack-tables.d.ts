// The tables of hpack.js (no published types) that the HPACK masker reads: the static table and the
// Huffman code of RFC 7541, Appendix A and B.

declare module 'hpack.js/lib/hpack/static-table.js' {
  /** The 61 entries of the static table, index 1 first. */
  export const table: { name: string; value: string }[];
}

declare module 'hpack.js/lib/hpack/huffman.js' {
  /** For each symbol 0..256 (256 is EOS): [bit length, code]. */
  export const encode: [number, number][];
}
