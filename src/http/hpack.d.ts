// The part of hpack.js (no published types) that tlstap uses: a decompressor per connection
// direction, and a compressor for the tests.

declare module 'hpack.js' {
  /** One header field as hpack.js yields it. */
  export interface HpackHeader {
    name: string;
    value: string;
    /** Sent as a never-indexed literal (the sender marked it sensitive). */
    neverIndex: boolean;
  }

  /** The dynamic table; `protocolMaxSize` bounds what a size update may ask for. */
  export interface HpackTable {
    size: number;
    maxSize: number;
    protocolMaxSize: number;
  }

  /** Table settings: `maxSize` is SETTINGS_HEADER_TABLE_SIZE (4096 by default in HTTP/2). */
  export interface HpackOptions {
    table: { maxSize: number };
  }

  /** Decodes header blocks; the dynamic table lives as long as the object. */
  export interface Decompressor {
    write(block: Buffer): boolean;
    /** Decodes what was written; with a callback, errors go to it (on the next tick). */
    execute(cb?: (err: Error | null) => void): void;
    read(): HpackHeader | null;
    updateTableSize(size: number): void;
    _table: HpackTable;
    /** The bit reader holding the bytes written and not yet decoded. */
    _decoder: { push(block: Buffer): void; isEmpty(): boolean };
    /** Decodes one header field representation (throws on bad input). */
    _execute(): void;
  }

  /** A header as the compressor takes it. */
  export interface CompressorHeader {
    name: string;
    value: string;
    neverIndex?: boolean;
    huffman?: boolean;
    incremental?: boolean;
  }

  /** Encodes header lists into header blocks, keeping its own dynamic table. */
  export interface Compressor {
    write(headers: CompressorHeader[]): boolean;
    read(): Buffer | null;
    updateTableSize(size: number): void;
    _table: HpackTable;
  }

  const hpack: {
    decompressor: { create(options: HpackOptions): Decompressor };
    compressor: { create(options: HpackOptions): Compressor };
  };
  export default hpack;
}
