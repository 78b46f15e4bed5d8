// The FileView of a machine reached through tlstap-agent: STAT, PREAD, READDIR, READLINK, READFILE.
import type { PositionalFile } from '../elf/index.js';
import type { AgentConnection } from './connection.js';
import { Args, MAX_READ, OP, READFILE_TRUNCATED, STAT_NOFOLLOW, decodeDirents, decodeStat } from './protocol.js';
import { FileTooLargeError, READ_FILE_MAX, modeType } from './view.js';
import type { FileView, ViewDirent, ViewStat } from './view.js';

/** Bytes fetched per block of a remote file: one round trip answers many small ELF reads. */
export const BLOCK_SIZE = 64 * 1024;
/** Blocks kept per open remote file. */
const CACHED_BLOCKS = 64;
/** Reads at least this large skip the cache and go out as they are. */
const DIRECT_READ = 4 * BLOCK_SIZE;

const DIRENT_TYPES: Record<number, ViewStat['type']> = { 4: 'dir', 8: 'file', 10: 'symlink' };

/** The files of the machine the agent runs on (under its --root). */
export class AgentView implements FileView {
  readonly where: string;
  constructor(
    private readonly agent: AgentConnection,
    host = 'remote',
  ) {
    this.where = `agent on ${host}`;
  }

  async stat(path: string, options: { follow?: boolean } = {}): Promise<ViewStat> {
    const flags = options.follow === false ? STAT_NOFOLLOW : 0;
    const st = decodeStat(await this.agent.request(OP.STAT, new Args().u32(flags).bytes(path).done(), path));
    return { type: modeType(st.mode), dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, uid: st.uid };
  }

  async readdir(path: string): Promise<ViewDirent[]> {
    const entries = decodeDirents(await this.agent.request(OP.READDIR, new Args().bytes(path).done(), path));
    return entries.map(({ name, type }) => {
      const kind = DIRENT_TYPES[type] ?? (type === 0 ? undefined : 'other');
      return kind === undefined ? { name } : { name, type: kind };
    });
  }

  async readlink(path: string): Promise<string> {
    return (await this.agent.request(OP.READLINK, new Args().bytes(path).done(), path)).toString('utf8');
  }

  async readFile(path: string, max = READ_FILE_MAX): Promise<Buffer> {
    const result = await this.agent.request(OP.READFILE, new Args().u32(max).bytes(path).done(), path);
    if ((result.readUInt32LE(0) & READFILE_TRUNCATED) !== 0) throw new FileTooLargeError(path, max);
    return result.subarray(4);
  }

  /** Bytes at `offset`: `length` of them (at most MAX_READ), fewer only at the end of the file. */
  async read(path: string, offset: number, length: number): Promise<Buffer> {
    const args = new Args().u64(BigInt(offset)).u32(length).bytes(path).done();
    return this.agent.request(OP.PREAD, args, path);
  }

  async openFile(path: string): Promise<PositionalFile> {
    const st = await this.stat(path);
    if (st.type !== 'file') throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EISDIR' });
    return new RemoteFile(this, path, Number(st.size));
  }
}

/**
 * A remote file read in cached 64 KiB blocks: an ELF symbol lookup makes hundreds of small reads
 * close together, which become a few round trips; blocks asked for at once are fetched once.
 */
class RemoteFile implements PositionalFile {
  private readonly blocks = new Map<number, Promise<Buffer>>();

  constructor(
    private readonly view: AgentView,
    private readonly path: string,
    readonly size: number,
  ) {}

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    length = Math.max(0, Math.min(length, this.size - position));
    if (length === 0) return 0;
    if (length >= DIRECT_READ) return this.direct(buf, offset, length, position);
    let done = 0;
    while (done < length) {
      const at = position + done;
      const index = Math.floor(at / BLOCK_SIZE);
      const block = await this.block(index);
      const from = at - index * BLOCK_SIZE;
      if (from >= block.length) break;
      done += block.copy(buf, offset + done, from, Math.min(block.length, from + length - done));
    }
    return done;
  }

  close(): void {
    this.blocks.clear();
  }

  private async direct(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    let done = 0;
    while (done < length) {
      const part = await this.view.read(this.path, position + done, Math.min(MAX_READ, length - done));
      if (part.length === 0) break;
      done += part.copy(buf, offset + done);
    }
    return done;
  }

  private block(index: number): Promise<Buffer> {
    let block = this.blocks.get(index);
    if (block === undefined) {
      if (this.blocks.size >= CACHED_BLOCKS) this.blocks.delete(this.blocks.keys().next().value!);
      block = this.view.read(this.path, index * BLOCK_SIZE, BLOCK_SIZE);
      block.catch(() => this.blocks.delete(index));
      this.blocks.set(index, block);
    }
    return block;
  }
}
