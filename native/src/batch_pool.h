// Batch buffers recycled between the polling thread and JS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace tlstap {

// A steady capture allocates no batch: JS gives each one back when V8 collects its Buffer.
// Without it, batches allocated on the polling thread and freed on the JS thread spread
// over several malloc arenas, which kept hundreds of MiB resident under load.
class BatchPool {
public:
	using Batch = std::vector<uint8_t>;

	// capacity: bytes reserved in every batch; keep: how many idle batches to hold on to.
	BatchPool(size_t capacity, size_t keep) : capacity_(capacity), keep_(keep) {}
	~BatchPool();
	BatchPool(const BatchPool &) = delete;
	BatchPool &operator=(const BatchPool &) = delete;

	// An empty batch with the capacity reserved. Any thread.
	Batch *Take();
	// Back to the pool, or freed when the pool holds enough. Any thread.
	void Give(Batch *batch);

private:
	const size_t capacity_;
	const size_t keep_;
	std::mutex mutex_;
	std::vector<Batch *> idle_;
};

using SharedBatchPool = std::shared_ptr<BatchPool>;

} // namespace tlstap
