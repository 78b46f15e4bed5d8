#include "record_feed.h"

#include "courier.h"
#include "errors.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace tlstap {

namespace {

struct Feed {
	std::unique_ptr<Courier> courier;
	std::thread producer;
	Napi::Promise::Deferred done;
	explicit Feed(Napi::Env env) : done(Napi::Promise::Deferred::New(env)) {}
};

struct FeedPlan {
	uint64_t records;
	size_t record_bytes;
	uint64_t records_per_poll;
	unsigned poll_interval_us;
};

void Produce(Courier *courier, FeedPlan plan)
{
	std::vector<uint8_t> record(plan.record_bytes);
	for (uint64_t i = 0; i < plan.records; i++) {
		memcpy(record.data(), &i, sizeof(i));
		memset(record.data() + sizeof(i), static_cast<int>(i % 251), record.size() - sizeof(i));
		courier->Append(record.data(), record.size());
		if ((i + 1) % plan.records_per_poll == 0) {
			courier->Flush();
			if (plan.poll_interval_us)
				std::this_thread::sleep_for(std::chrono::microseconds(plan.poll_interval_us));
		}
	}
	courier->Finish();
}

} // namespace

Napi::Value FeedRecords(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	Napi::Function on_batch = info[0].As<Napi::Function>();
	Napi::Object opts = info[1].As<Napi::Object>();
	auto num = [&](const char *key) { return opts.Get(key).As<Napi::Number>().DoubleValue(); };
	FeedPlan plan = {static_cast<uint64_t>(num("records")), static_cast<size_t>(num("recordBytes")),
			 static_cast<uint64_t>(num("recordsPerPoll")), static_cast<unsigned>(num("pollIntervalUs"))};
	if (plan.record_bytes < sizeof(uint64_t) || plan.records_per_poll == 0)
		ThrowBpfError(env, "feedRecords", EINVAL, "recordBytes must be 8 or more, recordsPerPoll 1 or more");
	Courier::Options options = {
		static_cast<size_t>(num("batchBytes")),
		sizeof(uint32_t) + plan.record_bytes,
		20,
		{static_cast<uint64_t>(num("spillMemoryBytes")), static_cast<uint64_t>(num("spillFileBytes")), nullptr},
	};
	auto *feed = new Feed(env);
	Napi::Promise promise = feed->done.Promise();
	// releaseBatches: each batch is released once onBatch returned, as the capture pipeline does.
	if (opts.Get("releaseBatches").ToBoolean().Value()) {
		auto callback = std::make_shared<Napi::FunctionReference>(Napi::Persistent(on_batch));
		on_batch = Napi::Function::New(env, [callback, feed](const Napi::CallbackInfo &call) {
			callback->Call({call[0], call[1], call[2]});
			ReleaseBatch(call.Env(), call[0], feed->courier.get());
		});
	}
	feed->courier = std::make_unique<Courier>(env, on_batch, options, [feed](Napi::Env env) {
		feed->producer.join();
		feed->done.Resolve(CourierStats(env, *feed->courier));
		delete feed;
	});
	feed->producer = std::thread(Produce, feed->courier.get(), plan);
	return promise;
}

} // namespace tlstap
