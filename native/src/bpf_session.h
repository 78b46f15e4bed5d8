// One loaded BPF object: settings before load, uprobe links, ring-buffer polling thread, counters.
#pragma once
#include <napi.h>

#include "batch_pool.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

struct bpf_object;
struct bpf_link;
struct ring_buffer;
struct tlstap_spill;

namespace tlstap {

class BpfSession : public Napi::ObjectWrap<BpfSession> {
public:
	static Napi::Function Define(Napi::Env env);
	explicit BpfSession(const Napi::CallbackInfo &info);
	~BpfSession() override;

private:
	// JS methods, in the order a session uses them.
	void SetGlobal(const Napi::CallbackInfo &info);
	void SetMapMaxEntries(const Napi::CallbackInfo &info);
	void SetAutoload(const Napi::CallbackInfo &info);
	void UpdateMapElem(const Napi::CallbackInfo &info);
	void Load(const Napi::CallbackInfo &info);
	Napi::Value LoadAsync(const Napi::CallbackInfo &info);
	Napi::Value AttachUprobe(const Napi::CallbackInfo &info);
	Napi::Value AttachTracepoint(const Napi::CallbackInfo &info);
	void UseUprobeMulti(const Napi::CallbackInfo &info);
	Napi::Value AttachUprobeMulti(const Napi::CallbackInfo &info);
	Napi::Value StartPolling(const Napi::CallbackInfo &info);
	Napi::Value StopPolling(const Napi::CallbackInfo &info);
	void PausePolling(const Napi::CallbackInfo &info);
	Napi::Value SpillStats(const Napi::CallbackInfo &info);
	void ReleaseBatch(const Napi::CallbackInfo &info);
	Napi::Value SumPercpuArray(const Napi::CallbackInfo &info);
	Napi::Value DetachAll(const Napi::CallbackInfo &info);
	void Close(const Napi::CallbackInfo &info);

	// Polling thread side.
	static int OnSample(void *ctx, void *data, size_t size);
	void PollLoop();
	void FlushBatch();
	// Delivery thread side: takes batches from the spill to JS at JS's pace.
	void DeliverLoop();

	void RequireOpen(Napi::Env env, const char *op) const;
	void DestroyLinks();
	void ReleaseAll();

	struct bpf_object *obj_ = nullptr;
	bool loaded_ = false;
	bool loading_ = false; // loadAsync() is running: nothing else may touch obj_
	std::vector<struct bpf_link *> links_;
	std::vector<int> multi_link_fds_; // uprobe_multi links made by a raw bpf(BPF_LINK_CREATE)

	struct ring_buffer *ring_ = nullptr;
	std::thread poller_;
	std::thread deliverer_;
	std::atomic<bool> stop_{false};
	std::atomic<bool> abort_{false}; // teardown: nobody waits for the rest
	std::atomic<bool> paused_{false}; // the outputs are behind: delivery waits, the spill grows
	struct tlstap_spill *spill_ = nullptr; // between the two threads (native/core/spill.h)
	bool polling_ = false;
	Napi::ThreadSafeFunction deliver_;
	size_t batch_limit_ = 0; // set by startPolling (batchBytes)
	int poll_timeout_ms_ = 100;
	SharedBatchPool pool_;                   // created by startPolling; finalizers of batches share it
	BatchPool::Batch *batch_ = nullptr; // owned by the polling thread until handed to JS
	uint32_t batch_count_ = 0;
	int poll_error_ = 0;
};

} // namespace tlstap
