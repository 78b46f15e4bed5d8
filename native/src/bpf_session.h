// One loaded BPF object, for JS: argument conversion over the capture core (native/core/tlstap_core.h),
// the ring-buffer polling thread and its batches' delivery to JS.
#pragma once
#include <napi.h>

#include "courier.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

struct tlstap_core;

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
	static int OnSample(void *ctx, const void *data, size_t size);
	void PollLoop();

	void RequireOpen(Napi::Env env, const char *op) const;
	// Throws the core's last failure when ret is a negative errno; returns ret.
	int Check(Napi::Env env, int ret) const;
	void ReleaseAll();

	struct tlstap_core *core_ = nullptr;
	bool loading_ = false; // loadAsync() is running: nothing else may touch core_

	std::thread poller_;
	std::atomic<bool> stop_{false};
	bool polling_ = false;
	int poll_timeout_ms_ = 100;
	// Batches from the polling thread to JS (made by startPolling; kept after the stop for its stats).
	std::unique_ptr<Courier> courier_;
	int poll_error_ = 0;
};

} // namespace tlstap
