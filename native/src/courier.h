// Batches of ring-buffer records, from the thread that reads them (the producer) to JS.
//
// While JS keeps up, the batch the producer filled becomes the JS Buffer as it is: one copy out of
// the ring buffer, no other. When JS falls behind (kQueuedBatches batches waiting for it) or the
// outputs paused delivery, batches go to the spill (native/core/spill.h) instead, and new ones keep
// going there until a delivery thread has handed every spilled batch to JS: JS gets the batches in
// the order they were made (queued ones, then the spill, then direct again once it is drained).
#pragma once
#include <napi.h>

#include "batch_pool.h"
#include "spill.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace tlstap {

class Courier {
public:
	// Batches handed to JS and not yet taken by its callback, beyond which the producer spills.
	static constexpr uint32_t kQueuedBatches = 16;

	struct Options {
		size_t batch_bytes;     // a batch is handed on once it holds this much
		size_t max_record;      // the largest record, framed: a batch's capacity is batch_bytes + max_record
		int wait_ms;            // how long the delivery thread waits for the spill at a time
		struct tlstap_spill_limits limits;
	};
	// Runs on the JS thread once the producer finished and every batch was delivered.
	using Ended = std::function<void(Napi::Env)>;

	// on_batch(buffer, count, spilled): count records framed [u32 little-endian length][bytes];
	// spilled says whether the batch came through the spill. Throws a BpfError if the spill
	// cannot be made. Starts the delivery thread.
	Courier(Napi::Env env, Napi::Function on_batch, const Options &options, Ended ended);
	~Courier();
	Courier(const Courier &) = delete;
	Courier &operator=(const Courier &) = delete;

	// Producer thread: one record into the current batch (handed on when full).
	void Append(const void *data, size_t size)
	{
		if (!batch_)
			batch_ = pool_->Take();
		uint32_t len = static_cast<uint32_t>(size);
		batch_->Append(&len, sizeof(len));
		batch_->Append(data, size);
		batch_count_++;
		if (batch_->size() >= batch_bytes_)
			Flush();
	}
	// Producer thread: hands the current batch on, to JS or to the spill. While the spill is full it
	// waits (the ring buffer fills meanwhile, and the kernel counts what it cannot hold).
	void Flush();
	// Producer thread, last call: flushes; the delivery thread ends once the spill is empty.
	void Finish();

	// Any thread. Paused: nothing goes to JS directly, and the delivery thread waits.
	void Pause(bool paused) { paused_ = paused; }
	// Teardown: nobody waits for the rest; blocked threads return.
	void Abort();

	struct Stats {
		struct tlstap_spill_stats spill;
		uint64_t direct_batches;  // handed to JS as they were filled
		uint64_t spilled_batches; // that went through the spill
		uint64_t batches_made;    // batches allocated (the pool reuses them)
	};
	void GetStats(Stats *out);
	// JS thread: the batch JS held at `data` back into the pool; false if it is not one lent by this courier.
	bool Return(const void *data) { return pool_->Return(data); }

private:
	void DeliverLoop();
	// Queues a batch for the JS callback (any thread); false after Abort (the batch is freed).
	bool Deliver(Batch *batch, uint32_t count, bool spilled);
	void WaitForRoom();

	const size_t batch_bytes_;
	const int wait_ms_;
	Ended ended_;
	SharedBatchPool pool_;
	struct tlstap_spill *spill_ = nullptr;
	Napi::ThreadSafeFunction tsfn_;
	std::thread deliverer_;

	// Producer's own.
	Batch *batch_ = nullptr;
	uint32_t batch_count_ = 0;

	std::atomic<bool> paused_{false};
	std::atomic<bool> abort_{false};
	// Batches queued for the JS callback, not yet taken by it.
	std::atomic<uint32_t> queued_{0};
	// Batches pushed to the spill and not yet queued for JS: while there are any, the producer
	// spills too. Raised by the producer before a push, lowered by the delivery thread after queuing.
	std::atomic<uint64_t> in_spill_{0};
	std::atomic<uint64_t> direct_batches_{0};
	std::atomic<uint64_t> spilled_batches_{0};
	// The delivery thread waits here for JS to take batches.
	std::mutex room_mutex_;
	std::condition_variable room_;
};

// {bytes, fileBytes, peakBytes, peakFileBytes, delayMs, maxDelayMs, fullWaits, lostBlocks, lostBytes,
// lostRecords, fileError?, directBatches, spilledBatches, batchesMade} for JS (SpillStats in src/events/types.ts).
Napi::Object CourierStats(Napi::Env env, Courier &courier);

// JS thread: JS is done with `batch`, a Buffer that `courier` delivered (null once the courier is
// gone). Its memory is detached (a view still held by mistake reads as empty, not as later
// records) and goes back to the pool at once. Without that it came back only when V8 collected
// the Buffer and node ran its finalizer on a later turn of the event loop: under load hundreds of
// MiB of released batches waited for it while new ones were made. Throws a BpfError for anything
// but a whole batch.
void ReleaseBatch(Napi::Env env, Napi::Value batch, Courier *courier);

} // namespace tlstap
