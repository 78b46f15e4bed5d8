// Numeric constants from the System V gABI and the GNU extensions (as in glibc's elf.h).

/** Size of the ELF header, per class. */
export const EHDR_SIZE = { 32: 52, 64: 64 } as const;
/** Size of one program header, per class. */
export const PHDR_SIZE = { 32: 32, 64: 56 } as const;
/** Size of one section header, per class. */
export const SHDR_SIZE = { 32: 40, 64: 64 } as const;
/** Size of one symbol table entry, per class. */
export const SYM_SIZE = { 32: 16, 64: 24 } as const;
/** Size of one .dynamic entry, per class. */
export const DYN_SIZE = { 32: 8, 64: 16 } as const;

/** e_type: relocatable object. */
export const ET_REL = 1;
/** e_type: executable at a fixed address. */
export const ET_EXEC = 2;
/** e_type: shared object or PIE. */
export const ET_DYN = 3;
/** e_type: core dump. */
export const ET_CORE = 4;

/** p_type: loadable segment. */
export const PT_LOAD = 1;
/** p_type: dynamic linking information. */
export const PT_DYNAMIC = 2;
/** p_type: notes. */
export const PT_NOTE = 4;
/** p_flags: executable segment. */
export const PF_X = 1;
/** p_flags: writable segment. */
export const PF_W = 2;

/** sh_type: symbol table. */
export const SHT_SYMTAB = 2;
/** sh_type: string table. */
export const SHT_STRTAB = 3;
/** sh_type: System V symbol hash table. */
export const SHT_HASH = 5;
/** sh_type: dynamic linking information. */
export const SHT_DYNAMIC = 6;
/** sh_type: notes. */
export const SHT_NOTE = 7;
/** sh_type: occupies no file space (.bss). */
export const SHT_NOBITS = 8;
/** sh_type: dynamic symbol table. */
export const SHT_DYNSYM = 11;
/** sh_type: GNU-style symbol hash table. */
export const SHT_GNU_HASH = 0x6ffffff6;
/** sh_type: GNU version definitions (.gnu.version_d). */
export const SHT_GNU_VERDEF = 0x6ffffffd;
/** sh_type: GNU version requirements (.gnu.version_r). */
export const SHT_GNU_VERNEED = 0x6ffffffe;
/** sh_type: GNU version index per dynamic symbol (.gnu.version). */
export const SHT_GNU_VERSYM = 0x6fffffff;

/** Section index of an undefined symbol. */
export const SHN_UNDEF = 0;
/** e_shstrndx value meaning "the real index is in section 0's sh_link". */
export const SHN_XINDEX = 0xffff;
/** e_phnum value meaning "the real count is in section 0's sh_info". */
export const PN_XNUM = 0xffff;

/** Symbol type: data object. */
export const STT_OBJECT = 1;
/** Symbol type: function. */
export const STT_FUNC = 2;
/** Symbol type: common block (a tentative data object). */
export const STT_COMMON = 5;
/** Symbol binding: local. */
export const STB_LOCAL = 0;
/** Symbol binding: global. */
export const STB_GLOBAL = 1;
/** Symbol binding: weak. */
export const STB_WEAK = 2;

/** .dynamic tag: end of the array. */
export const DT_NULL = 0;
/** .dynamic tag: name of a needed library (string table offset). */
export const DT_NEEDED = 1;
/** .dynamic tag: address of the dynamic string table. */
export const DT_STRTAB = 5;
/** .dynamic tag: size of the dynamic string table. */
export const DT_STRSZ = 10;

/** Note type of the GNU build ID (owner "GNU"). */
export const NT_GNU_BUILD_ID = 3;

/** .gnu.version index: local symbol. */
export const VER_NDX_LOCAL = 0;
/** .gnu.version index: global, unversioned symbol. */
export const VER_NDX_GLOBAL = 1;
/** .gnu.version bit marking a hidden (non-default, `name@VER`) version. */
export const VERSYM_HIDDEN = 0x8000;

/** e_machine: Intel 80386. */
export const EM_386 = 3;
/** e_machine: IBM S/390 (31-bit s390 and 64-bit s390x). */
export const EM_S390 = 22;
/** e_machine: 32-bit ARM. */
export const EM_ARM = 40;

/** e_machine → short architecture name (EM_S390 depends on the class; see header.ts). */
export const MACHINE_NAMES: ReadonlyMap<number, string> = new Map([
  [0, 'none'],
  [2, 'sparc'],
  [EM_386, 'i386'],
  [8, 'mips'],
  [20, 'ppc'],
  [21, 'ppc64'],
  [EM_S390, 's390x'],
  [EM_ARM, 'arm'],
  [43, 'sparcv9'],
  [62, 'x86_64'],
  [183, 'aarch64'],
  [243, 'riscv'],
  [247, 'bpf'],
  [258, 'loongarch'],
]);
