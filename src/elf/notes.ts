import { NT_GNU_BUILD_ID } from './constants.js';
import { Decoder } from './reader.js';

/** One ELF note: owner name (without its NUL), type and descriptor bytes. */
export interface ElfNote {
  name: string;
  type: number;
  desc: Buffer;
}

/**
 * Parses a run of notes: namesz, descsz, type (u32 each), then the name and the descriptor, each
 * padded to `align` (4, or 8 in sections and segments aligned to 8). A note that does not fit ends
 * the run: a truncated note area is ignored, not an error.
 */
export function parseNotes(buf: Buffer, littleEndian: boolean, align: 4 | 8): ElfNote[] {
  const d = new Decoder(buf, littleEndian, 32);
  const pad = (n: number): number => Math.ceil(n / align) * align;
  const notes: ElfNote[] = [];
  let at = 0;
  while (at + 12 <= buf.length) {
    const namesz = d.u32(at);
    const descsz = d.u32(at + 4);
    const type = d.u32(at + 8);
    const nameAt = at + 12;
    const descAt = nameAt + pad(namesz);
    if (nameAt + namesz > buf.length || descAt + descsz > buf.length) break;
    let nameEnd = nameAt + namesz;
    while (nameEnd > nameAt && buf[nameEnd - 1] === 0) nameEnd--;
    notes.push({ name: buf.toString('latin1', nameAt, nameEnd), type, desc: buf.subarray(descAt, descAt + descsz) });
    at = descAt + pad(descsz);
  }
  return notes;
}

/** The NT_GNU_BUILD_ID descriptor in `notes` as lowercase hex, if there is one. */
export function buildIdFrom(notes: readonly ElfNote[]): string | undefined {
  const note = notes.find((n) => n.name === 'GNU' && n.type === NT_GNU_BUILD_ID && n.desc.length > 0);
  return note?.desc.toString('hex');
}
