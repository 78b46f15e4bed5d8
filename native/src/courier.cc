#include "courier.h"

#include "errors.h"

#include <cerrno>
#include <chrono>
#include <algorithm>
#include <cstring>
#include <memory>
#include <pthread.h>

namespace tlstap {

namespace {

// Most idle batches kept for those the spill's memory holds.
constexpr size_t kMaxSpilledIdle = 32;
// How often a waiting thread looks again (a full spill, a paused output, a full queue).
constexpr auto kWaitStep = std::chrono::milliseconds(2);

// A batch on its way to the JS callback.
struct Delivery {
	Batch *batch;
	SharedBatchPool pool;
	uint32_t count;
	bool spilled;
	std::atomic<uint32_t> *queued;
	std::condition_variable *room;
	std::mutex *room_mutex;
};

// On the JS thread: the batch becomes a Buffer over its own memory (no copy), and the callback runs.
void CallJs(Napi::Env env, Napi::Function callback, Delivery *d)
{
	std::unique_ptr<Delivery> delivery(d);
	if (env == nullptr) { // the function is being torn down: nobody to deliver to
		d->pool->Give(d->batch);
		return;
	}
	// JS took it: the queue has room again.
	if (d->queued->fetch_sub(1) == Courier::kQueuedBatches) {
		std::lock_guard<std::mutex> lock(*d->room_mutex);
		d->room->notify_one();
	}
	// V8 cannot see memory outside its heap: without this, batches that outlive a scavenge wait
	// for a major GC, and under load they pile up. The bytes used, not the capacity: most batches
	// are small, and overstating them makes V8 collect in vain.
	auto external = static_cast<int64_t>(d->batch->size());
	Napi::MemoryManagement::AdjustExternalMemory(env, external);
	uint32_t count = d->count;
	bool spilled = d->spilled;
	// Lent to JS from here: it comes back to the pool when JS releases it (releaseBatch), or else
	// when V8 collects the Buffer, whichever is first (BatchPool::Return).
	Delivery *owner = delivery.release();
	uint64_t token = owner->pool->Lend(owner->batch);
	Napi::Buffer<uint8_t> buffer = Napi::Buffer<uint8_t>::New(
		env, owner->batch->data(), owner->batch->size(),
		[external, token](Napi::Env env, uint8_t *data, Delivery *owned) {
			if (owned->pool->Return(data, token))
				Napi::MemoryManagement::AdjustExternalMemory(env, -external);
			delete owned;
		},
		owner);
	callback.Call({buffer, Napi::Number::New(env, count), Napi::Boolean::New(env, spilled)});
}

} // namespace

Courier::Courier(Napi::Env env, Napi::Function on_batch, const Options &options, Ended ended)
	: batch_bytes_(options.batch_bytes), wait_ms_(options.wait_ms), ended_(std::move(ended))
{
	// Room for the limit and the record that crosses it: a batch never grows. Enough idle
	// batches are kept for the queue to JS to cycle without allocating, and for those the
	// spill's memory holds.
	size_t capacity = options.batch_bytes + options.max_record;
	pool_ = std::make_shared<BatchPool>(capacity, kQueuedBatches + 2 + std::min<size_t>(options.limits.memory_bytes / capacity, kMaxSpilledIdle));
	spill_ = tlstap_spill_new(&options.limits);
	if (!spill_)
		ThrowBpfError(env, "tlstap_spill_new", errno, "");
	// Two threads hold the function: the producer and the delivery thread. Its queue is bounded
	// by queued_, not by N-API: the producer never blocks on JS.
	tsfn_ = Napi::ThreadSafeFunction::New(env, on_batch, "tlstap-batches", 0, 2, [this](Napi::Env env) {
		// On the JS thread, once both released it.
		if (deliverer_.joinable())
			deliverer_.join();
		Ended ended = std::move(ended_);
		ended(env); // may delete this Courier: nothing after it
	});
	deliverer_ = std::thread(&Courier::DeliverLoop, this);
}

Courier::~Courier()
{
	if (deliverer_.joinable()) {
		// Only reached when JS never waited for the end (teardown).
		Abort();
		deliverer_.join();
	}
	if (batch_)
		pool_->Give(batch_);
	// Batches the spill still holds (an aborted delivery) are given back before it is freed.
	Batch *scratch = pool_->Take();
	uint32_t tag = 0;
	void *owner = nullptr;
	while (spill_ && tlstap_spill_pop_ref(spill_, scratch->data(), scratch->capacity(), &tag, &owner) != 0) {
		if (owner)
			pool_->Give(static_cast<Batch *>(owner));
	}
	pool_->Give(scratch);
	tlstap_spill_free(spill_);
}

bool Courier::Deliver(Batch *batch, uint32_t count, bool spilled)
{
	queued_++;
	auto *d = new Delivery{batch, pool_, count, spilled, &queued_, &room_, &room_mutex_};
	if (tsfn_.NonBlockingCall(d, CallJs) == napi_ok)
		return true;
	queued_--;
	pool_->Give(batch);
	delete d;
	return false;
}

void Courier::Flush()
{
	if (!batch_ || batch_count_ == 0)
		return;
	// Straight to JS while it keeps up and nothing waits in the spill (which would come first).
	if (!paused_.load(std::memory_order_relaxed) && in_spill_.load(std::memory_order_acquire) == 0 &&
	    queued_.load(std::memory_order_relaxed) < kQueuedBatches) {
		Batch *batch = batch_;
		batch_ = nullptr;
		if (Deliver(batch, batch_count_, false))
			direct_batches_.fetch_add(1, std::memory_order_relaxed);
		batch_count_ = 0;
		return;
	}
	in_spill_.fetch_add(1, std::memory_order_relaxed);
	// A batch filled half way or more is held by the spill as it is, not copied (a small one is
	// copied rather than hold a whole buffer for a few bytes); the file copies it either way.
	bool by_ref = batch_->size() >= batch_->capacity() / 2;
	for (;;) {
		int ret = by_ref ? tlstap_spill_push_ref(spill_, batch_->data(), batch_->size(), batch_->capacity(), batch_, batch_count_)
				 : tlstap_spill_push(spill_, batch_->data(), batch_->size(), batch_count_);
		if (ret >= 0) {
			spilled_batches_.fetch_add(1, std::memory_order_relaxed);
			if (ret == 1)
				batch_ = nullptr; // the spill's until the delivery thread takes it out
			break;
		}
		if (abort_.load()) {
			in_spill_.fetch_sub(1, std::memory_order_relaxed);
			break;
		}
		std::this_thread::sleep_for(kWaitStep);
	}
	if (batch_)
		batch_->SetSize(0);
	batch_count_ = 0;
}

void Courier::Finish()
{
	Flush();
	tlstap_spill_close(spill_);
	tsfn_.Release();
}

void Courier::Abort()
{
	if (abort_.exchange(true))
		return;
	tsfn_.Abort();
	room_.notify_all();
}

// Waits until JS has room for a batch (or a step passed: the caller looks again).
void Courier::WaitForRoom()
{
	std::unique_lock<std::mutex> lock(room_mutex_);
	room_.wait_for(lock, kWaitStep, [this] { return queued_.load() < kQueuedBatches || abort_.load(); });
}

// Takes batches out of the spill, oldest first, while the outputs keep up (not paused) and JS has
// room, until the producer finished and the spill is empty.
void Courier::DeliverLoop()
{
	pthread_setname_np(pthread_self(), "tlstap-deliver");
	Batch *copy = nullptr;
	while (!abort_.load()) {
		if (paused_.load(std::memory_order_relaxed)) {
			std::this_thread::sleep_for(kWaitStep);
			continue;
		}
		if (queued_.load() >= kQueuedBatches) {
			WaitForRoom();
			continue;
		}
		size_t len = tlstap_spill_wait(spill_, wait_ms_);
		if (len == 0) {
			if (tlstap_spill_done(spill_))
				break;
			continue;
		}
		// A batch held by reference comes back as it is; any other is copied into `copy`.
		if (!copy)
			copy = pool_->Take();
		uint32_t count = 0;
		void *owner = nullptr;
		long got = tlstap_spill_pop_ref(spill_, copy->data(), copy->capacity(), &count, &owner);
		if (got == 0) // cannot happen: this thread alone takes blocks out
			continue;
		Batch *batch = owner ? static_cast<Batch *>(owner) : copy;
		if (got > 0) {
			if (batch == copy)
				copy = nullptr;
			batch->SetSize(static_cast<size_t>(got));
			Deliver(batch, count, true);
		} else if (owner) { // a read error: the spill counted it (lost_*)
			pool_->Give(batch);
		}
		// Queued before it is no longer counted as in the spill: the producer's next direct
		// batch comes after it.
		in_spill_.fetch_sub(1, std::memory_order_release);
	}
	if (copy)
		pool_->Give(copy);
	tsfn_.Release();
}

void Courier::GetStats(Stats *out)
{
	tlstap_spill_get_stats(spill_, &out->spill);
	out->direct_batches = direct_batches_.load();
	out->spilled_batches = spilled_batches_.load();
	out->batches_made = pool_->made();
}

void ReleaseBatch(Napi::Env env, Napi::Value value, Courier *courier)
{
	if (!value.IsBuffer())
		ThrowBpfError(env, "releaseBatch", EINVAL, "expected a batch Buffer");
	Napi::Buffer<uint8_t> batch = value.As<Napi::Buffer<uint8_t>>();
	Napi::ArrayBuffer memory = batch.ArrayBuffer();
	if (memory.IsDetached())
		return;
	// A batch is a whole external ArrayBuffer; refuse a slice of anything else.
	if (batch.ByteOffset() != 0 || batch.ByteLength() != memory.ByteLength())
		ThrowBpfError(env, "releaseBatch", EINVAL, "not a batch this session delivered");
	const void *data = memory.Data();
	auto bytes = static_cast<int64_t>(memory.ByteLength());
	memory.Detach();
	if (courier && courier->Return(data)) // else its Buffer's finalizer gives it back
		Napi::MemoryManagement::AdjustExternalMemory(env, -bytes);
}

Napi::Object CourierStats(Napi::Env env, Courier &courier)
{
	Courier::Stats stats;
	courier.GetStats(&stats);
	const struct tlstap_spill_stats &st = stats.spill;
	Napi::Object out = Napi::Object::New(env);
	auto num = [&](const char *key, double v) { out.Set(key, Napi::Number::New(env, v)); };
	num("bytes", static_cast<double>(st.bytes));
	num("fileBytes", static_cast<double>(st.file_bytes));
	num("peakBytes", static_cast<double>(st.peak_bytes));
	num("peakFileBytes", static_cast<double>(st.peak_file_bytes));
	num("delayMs", static_cast<double>(st.delay_ns) / 1e6);
	num("maxDelayMs", static_cast<double>(st.max_delay_ns) / 1e6);
	num("fullWaits", static_cast<double>(st.full_waits));
	num("lostBlocks", static_cast<double>(st.lost_blocks));
	num("lostBytes", static_cast<double>(st.lost_bytes));
	num("lostRecords", static_cast<double>(st.lost_tags));
	if (st.file_error)
		out.Set("fileError", Napi::String::New(env, strerror(st.file_error)));
	num("directBatches", static_cast<double>(stats.direct_batches));
	num("spilledBatches", static_cast<double>(stats.spilled_batches));
	num("batchesMade", static_cast<double>(stats.batches_made));
	return out;
}

} // namespace tlstap
