// The --record file format: RecordWriter writes it, openRecordFile reads it (docs/record-format.md).
export {
  RECORD_FORMAT_VERSION,
  MAX_FRAME_PAYLOAD,
  MAX_HEADER_JSON,
  RecordFormatError,
  BatchFormatError,
  iterateBatchRecords,
  forEachBatchRecord,
  validateBatch,
  encodeBatch,
} from './format.js';
export type { RecordHeader, RecordFormatErrorKind } from './format.js';
export { RecordWriter, RecordWriteError } from './writer.js';
export type { RecordWriterOptions, RecordWriterStats } from './writer.js';
export { openRecordFile } from './reader.js';
export type { RecordDamage, RecordReader, RecordStop, RecordBatch } from './reader.js';
