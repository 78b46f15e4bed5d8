#include "batch_pool.h"

namespace tlstap {

BatchPool::~BatchPool()
{
	for (Batch *batch : idle_)
		delete batch;
}

Batch *BatchPool::Take()
{
	{
		std::lock_guard<std::mutex> lock(mutex_);
		if (!idle_.empty()) {
			Batch *batch = idle_.back();
			idle_.pop_back();
			return batch;
		}
	}
	return new Batch(capacity_);
}

void BatchPool::Give(Batch *batch)
{
	batch->SetSize(0);
	{
		std::lock_guard<std::mutex> lock(mutex_);
		if (idle_.size() < keep_) {
			idle_.push_back(batch);
			return;
		}
	}
	delete batch;
}

} // namespace tlstap
