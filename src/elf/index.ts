// Public API of the ELF reader: symbols, versions, build IDs and file offsets for uprobes.
export { ElfError } from './errors.js';
export type { ElfErrorOptions } from './errors.js';
export { ElfFile, withElfFile } from './elf-file.js';
export type { ResolvedFunction } from './elf-file.js';
export type { ElfSection, ElfSegment } from './header.js';
export type { ElfSymbolInfo } from './symbols.js';
export { sliceFile } from './reader.js';
export type { PositionalFile } from './reader.js';
