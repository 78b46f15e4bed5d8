// feedRecords(): synthetic records through the same delivery path as the ring buffer's (Courier),
// from a thread of its own; for tests of that path without a BPF program.
#pragma once
#include <napi.h>

namespace tlstap {

// feedRecords(onBatch(buffer, count, spilled), {records, recordBytes, batchBytes, recordsPerPoll,
// pollIntervalUs, spillMemoryBytes, spillFileBytes, releaseBatches?}) -> Promise<stats> (CourierStats)
// once every batch was delivered; with releaseBatches, each batch is released once onBatch
// returned. Record i is recordBytes long (8 at least): i as a u64 little-endian, then the byte
// i % 251 repeated. The producer flushes after every recordsPerPoll records and then
// sleeps pollIntervalUs, as the poller does between polls.
Napi::Value FeedRecords(const Napi::CallbackInfo &info);

} // namespace tlstap
