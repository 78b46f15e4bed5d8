// Batch buffers recycled between the polling thread and JS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace tlstap {

// The bytes of one batch: a fixed capacity, filled without being zeroed first.
class Batch {
public:
	explicit Batch(size_t capacity) : bytes_(new uint8_t[capacity]), capacity_(capacity) {}
	uint8_t *data() { return bytes_.get(); }
	size_t size() const { return size_; }
	size_t capacity() const { return capacity_; }
	// Appends size bytes; the caller keeps within the capacity.
	void Append(const void *data, size_t size)
	{
		memcpy(bytes_.get() + size_, data, size);
		size_ += size;
	}
	// The length after bytes were written straight into data() (at most the capacity).
	void SetSize(size_t size) { size_ = size; }

private:
	std::unique_ptr<uint8_t[]> bytes_; // new uint8_t[n]: not zeroed
	size_t size_ = 0;
	const size_t capacity_;
};

// A steady capture allocates no batch: JS gives each one back when it releases (or V8 collects)
// its Buffer. Without it, batches allocated on the polling thread and freed on the JS thread spread
// over several malloc arenas, which kept hundreds of MiB resident under load, and every new batch
// costs its page faults again.
class BatchPool {
public:
	// capacity: bytes of every batch; keep: how many idle batches to hold on to.
	BatchPool(size_t capacity, size_t keep) : capacity_(capacity), keep_(keep) {}
	~BatchPool();
	BatchPool(const BatchPool &) = delete;
	BatchPool &operator=(const BatchPool &) = delete;

	size_t capacity() const { return capacity_; }
	// Batches allocated so far (a steady capture makes a few and reuses them).
	uint64_t made() const { return made_.load(std::memory_order_relaxed); }
	// An empty batch. Any thread.
	Batch *Take();
	// Back to the pool, or freed when the pool holds enough. Any thread.
	void Give(Batch *batch);
	// The batch is lent to JS as a Buffer over its memory; the token names this lending. It comes
	// back once: from JS's releaseBatch, or else from the Buffer's finalizer, which node runs only
	// on a later turn of the event loop (under load hundreds of released batches waited for it,
	// and new ones were made meanwhile).
	uint64_t Lend(Batch *batch);
	// The lent batch whose memory is at data back into the pool (JS thread, its Buffer still
	// alive); false if none is lent there. Any thread.
	bool Return(const void *data);
	// The same from the Buffer's finalizer: only if that lending (token) is still the batch's, not
	// a later one of the same memory after JS released it and the producer took it again.
	bool Return(const void *data, uint64_t token);

private:
	bool KeepLocked(Batch *batch); // with mutex_ held: false when the pool holds enough (the caller frees it)
	bool ReturnIf(const void *data, const uint64_t *token);

	const size_t capacity_;
	const size_t keep_;
	std::mutex mutex_;
	std::vector<Batch *> idle_;
	struct Lent {
		Batch *batch;
		uint64_t token;
	};
	std::unordered_map<const void *, Lent> lent_;
	uint64_t next_token_ = 0;
	std::atomic<uint64_t> made_{0};
};

using SharedBatchPool = std::shared_ptr<BatchPool>;

} // namespace tlstap
