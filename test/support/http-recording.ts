// A recording of many HTTP/1.1 exchanges, made from synthetic ring-buffer records (for the web view's scale test).
import { EVENT_LAYOUT } from '../../src/events/layout.js';
import { RecordWriter, openRecordFile } from '../../src/record/index.js';
import { encodeBatchOf, encodeConnRecord, encodeRecord } from './events.js';

const K = EVENT_LAYOUT.constants;
const FIXTURE = new URL('../../../fixtures/recordings/clients.tlstap', import.meta.url).pathname;

/**
 * Writes a recording of `connections` keep-alive HTTP/1.1 connections of `perConnection` exchanges
 * each: `GET /item/N` answered by a small JSON body (404 for every 50th), over seven process names.
 */
export async function writeHttpRecording(path: string, connections: number, perConnection: number): Promise<void> {
  const source = await openRecordFile(FIXTURE);
  const { formatVersion: _, ...header } = source.header;
  await source.close();
  const writer = await RecordWriter.create(path, header);
  let ts = 1_000_000_000n;
  for (let c = 0; c < connections; c++) {
    const connId = c + 1;
    const ssl = 0x10000n + BigInt(c);
    const pid = 1000 + (c % 7);
    const comm = ['curl', 'python3', 'node', 'wget', 'firefox', 'git', 'apt'][c % 7]!;
    const records = [
      encodeConnRecord({ kind: K.EVENT_CONN_OPEN, connId, ssl, pid, comm, fd: 3, family: 2, laddr: Buffer.from([127, 0, 0, 1]), raddr: Buffer.from([127, 0, 0, 1]), lport: 20000 + c, rport: 443, tsNs: ts }),
    ];
    for (let i = 0; i < perConnection; i++) {
      const n = c * perConnection + i;
      const body = JSON.stringify({ item: n, name: `thing ${n}` });
      const status = n % 50 === 0 ? 404 : 200;
      const request = `GET /item/${n} HTTP/1.1\r\nHost: api${c % 10}.example\r\nUser-Agent: ${comm}\r\n\r\n`;
      const response = `HTTP/1.1 ${status} ${status === 200 ? 'OK' : 'Not Found'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      ts += 1000n;
      records.push(encodeRecord({ connId, ssl, pid, comm, seq: 2 * i, func: 1, tsNs: ts, data: Buffer.from(request) }));
      ts += 50_000n;
      records.push(encodeRecord({ connId, ssl, pid, comm, seq: 2 * i + 1, func: 2, tsNs: ts, data: Buffer.from(response) }));
    }
    const { batch, count } = encodeBatchOf(records);
    writer.writeBatch(batch, count);
  }
  await writer.close();
}

