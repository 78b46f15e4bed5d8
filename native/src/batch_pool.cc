#include "batch_pool.h"

namespace tlstap {

BatchPool::~BatchPool()
{
	for (Batch *batch : idle_)
		delete batch;
	for (auto &lent : lent_)
		delete lent.second.batch;
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
	made_.fetch_add(1, std::memory_order_relaxed);
	return new Batch(capacity_);
}

void BatchPool::Give(Batch *batch)
{
	bool kept;
	{
		std::lock_guard<std::mutex> lock(mutex_);
		kept = KeepLocked(batch);
	}
	if (!kept)
		delete batch; // outside the lock: freeing a batch unmaps it
}

bool BatchPool::KeepLocked(Batch *batch)
{
	if (idle_.size() >= keep_)
		return false;
	batch->SetSize(0);
	idle_.push_back(batch);
	return true;
}

uint64_t BatchPool::Lend(Batch *batch)
{
	std::lock_guard<std::mutex> lock(mutex_);
	uint64_t token = ++next_token_;
	lent_[batch->data()] = Lent{batch, token};
	return token;
}

bool BatchPool::Return(const void *data)
{
	return ReturnIf(data, nullptr);
}

bool BatchPool::Return(const void *data, uint64_t token)
{
	return ReturnIf(data, &token);
}

bool BatchPool::ReturnIf(const void *data, const uint64_t *token)
{
	Batch *batch;
	{
		std::lock_guard<std::mutex> lock(mutex_);
		auto lent = lent_.find(data);
		if (lent == lent_.end() || (token && lent->second.token != *token))
			return false;
		batch = lent->second.batch;
		lent_.erase(lent);
		if (KeepLocked(batch))
			return true;
	}
	delete batch;
	return true;
}

} // namespace tlstap
