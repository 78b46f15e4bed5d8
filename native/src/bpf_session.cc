#include "bpf_session.h"

#include "errors.h"
#include "tlstap.h"
#include "tlstap_core.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace tlstap {

namespace {

// Spill limits when startPolling is given none: memory, then the file.
constexpr double kSpillMemoryBytes = 16.0 * (1 << 20);
constexpr double kSpillFileBytes = 4.0 * (1 << 30);
// The largest record the program writes, with its length frame in a batch.
constexpr size_t kMaxRecordBytes = sizeof(uint32_t) + sizeof(struct tlstap_data_event) + TLSTAP_CHUNK_SIZE;
// The polling thread's real-time priority (SCHED_FIFO's lowest), and its nice value where that is
// refused (CFS weight about 9.3 times the default's).
constexpr int kPollerRtPriority = 1;
constexpr int kPollerNice = -10;
// Room for the keys of a per-CPU array summed by sumPercpuArray.
constexpr size_t kMaxPercpuKeys = 256;

} // namespace

Napi::Function BpfSession::Define(Napi::Env env)
{
	return DefineClass(env, "BpfSession",
			   {
				   InstanceMethod("setGlobal", &BpfSession::SetGlobal),
				   InstanceMethod("setMapMaxEntries", &BpfSession::SetMapMaxEntries),
				   InstanceMethod("setAutoload", &BpfSession::SetAutoload),
				   InstanceMethod("updateMapElem", &BpfSession::UpdateMapElem),
				   InstanceMethod("load", &BpfSession::Load),
				   InstanceMethod("loadAsync", &BpfSession::LoadAsync),
				   InstanceMethod("attachUprobe", &BpfSession::AttachUprobe),
				   InstanceMethod("attachTracepoint", &BpfSession::AttachTracepoint),
				   InstanceMethod("useUprobeMulti", &BpfSession::UseUprobeMulti),
				   InstanceMethod("attachUprobeMulti", &BpfSession::AttachUprobeMulti),
				   InstanceMethod("startPolling", &BpfSession::StartPolling),
				   InstanceMethod("stopPolling", &BpfSession::StopPolling),
				   InstanceMethod("pausePolling", &BpfSession::PausePolling),
				   InstanceMethod("spillStats", &BpfSession::SpillStats),
				   InstanceMethod("releaseBatch", &BpfSession::ReleaseBatch),
				   InstanceMethod("sumPercpuArray", &BpfSession::SumPercpuArray),
				   InstanceMethod("detachAll", &BpfSession::DetachAll),
				   InstanceMethod("close", &BpfSession::Close),
			   });
}

// new BpfSession(objectPath, btfPath?): btfPath replaces the kernel's BTF for CO-RE relocations.
BpfSession::BpfSession(const Napi::CallbackInfo &info) : Napi::ObjectWrap<BpfSession>(info)
{
	std::string path = info[0].As<Napi::String>();
	std::string btf = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
	int ret = tlstap_core_open_file(&core_, path.c_str(), btf.empty() ? nullptr : btf.c_str());
	if (ret)
		ThrowCoreError(info.Env(), nullptr, ret);
}

BpfSession::~BpfSession()
{
	ReleaseAll();
}

void BpfSession::RequireOpen(Napi::Env env, const char *op) const
{
	if (!core_)
		ThrowBpfError(env, op, EBADF, "the session is closed");
	if (loading_)
		ThrowBpfError(env, op, EBUSY, "the program is still loading");
}

int BpfSession::Check(Napi::Env env, int ret) const
{
	if (ret < 0)
		ThrowCoreError(env, core_, ret);
	return ret;
}

// setGlobal(section, name, bytes): writes a `const volatile` setting before load.
void BpfSession::SetGlobal(const Napi::CallbackInfo &info)
{
	std::string section = info[0].As<Napi::String>();
	std::string name = info[1].As<Napi::String>();
	Napi::Buffer<uint8_t> value = info[2].As<Napi::Buffer<uint8_t>>();

	RequireOpen(info.Env(), "setGlobal");
	Check(info.Env(), tlstap_core_set_global(core_, section.c_str(), name.c_str(), value.Data(), value.Length()));
}

// setMapMaxEntries(name, entries): e.g. the ring buffer's size in bytes.
void BpfSession::SetMapMaxEntries(const Napi::CallbackInfo &info)
{
	std::string name = info[0].As<Napi::String>();
	uint32_t entries = info[1].As<Napi::Number>().Uint32Value();

	RequireOpen(info.Env(), "setMapMaxEntries");
	Check(info.Env(), tlstap_core_set_map_max_entries(core_, name.c_str(), entries));
}

// setAutoload(program, autoload): before load, whether the program is loaded at all.
void BpfSession::SetAutoload(const Napi::CallbackInfo &info)
{
	std::string name = info[0].As<Napi::String>();
	bool autoload = info[1].As<Napi::Boolean>().Value();

	RequireOpen(info.Env(), "setAutoload");
	Check(info.Env(), tlstap_core_set_autoload(core_, name.c_str(), autoload));
}

// updateMapElem(map, key, value): after load, writes one entry of a map.
void BpfSession::UpdateMapElem(const Napi::CallbackInfo &info)
{
	std::string name = info[0].As<Napi::String>();
	Napi::Buffer<uint8_t> key = info[1].As<Napi::Buffer<uint8_t>>();
	Napi::Buffer<uint8_t> value = info[2].As<Napi::Buffer<uint8_t>>();

	RequireOpen(info.Env(), "updateMapElem");
	Check(info.Env(),
	      tlstap_core_update_map_elem(core_, name.c_str(), key.Data(), key.Length(), value.Data(), value.Length()));
}

void BpfSession::Load(const Napi::CallbackInfo &info)
{
	RequireOpen(info.Env(), "load");
	Check(info.Env(), tlstap_core_load(core_));
}

namespace {

// Loads the object off the JS thread: the verifier and the kernel BTF take tens of milliseconds,
// which the JS thread spends finding the files to probe meanwhile.
class LoadWorker : public Napi::AsyncWorker {
public:
	LoadWorker(Napi::Object session, struct tlstap_core *core, bool *loading)
		: Napi::AsyncWorker(session.Env()), session_(Napi::Persistent(session)), core_(core), loading_(loading),
		  done_(Napi::Promise::Deferred::New(session.Env()))
	{
	}
	Napi::Promise Promise() { return done_.Promise(); }
	void Execute() override { ret_ = tlstap_core_load(core_); }
	void OnOK() override
	{
		*loading_ = false;
		if (ret_)
			done_.Reject(MakeCoreError(Env(), core_, ret_));
		else
			done_.Resolve(Env().Undefined());
	}

private:
	Napi::ObjectReference session_; // keeps the session (and so core_) alive while loading
	struct tlstap_core *core_;
	bool *loading_;
	int ret_ = 0;
	Napi::Promise::Deferred done_;
};

} // namespace

// loadAsync() -> Promise: load() on a worker thread; the session refuses every other call meanwhile.
Napi::Value BpfSession::LoadAsync(const Napi::CallbackInfo &info)
{
	RequireOpen(info.Env(), "loadAsync");
	auto *worker = new LoadWorker(info.This().As<Napi::Object>(), core_, &loading_);
	Napi::Promise promise = worker->Promise();
	loading_ = true;
	worker->Queue();
	return promise;
}

// attachUprobe(program, binaryPath, fileOffset: bigint, pid (-1 = all), retprobe, cookie: bigint) -> link index
Napi::Value BpfSession::AttachUprobe(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string prog = info[0].As<Napi::String>();
	std::string binary = info[1].As<Napi::String>();
	bool lossless = false;
	uint64_t offset = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
	int pid = info[3].As<Napi::Number>().Int32Value();
	bool retprobe = info[4].As<Napi::Boolean>().Value();
	uint64_t cookie = info[5].As<Napi::BigInt>().Uint64Value(&lossless);

	RequireOpen(env, "attachUprobe");
	int link = Check(env, tlstap_core_attach_uprobe(core_, prog.c_str(), binary.c_str(), offset, pid, retprobe, cookie));
	return Napi::Number::New(env, link);
}

// attachTracepoint(program, category, name) -> link index
Napi::Value BpfSession::AttachTracepoint(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string prog = info[0].As<Napi::String>();
	std::string category = info[1].As<Napi::String>();
	std::string name = info[2].As<Napi::String>();

	RequireOpen(env, "attachTracepoint");
	int link = Check(env, tlstap_core_attach_tracepoint(core_, prog.c_str(), category.c_str(), name.c_str()));
	return Napi::Number::New(env, link);
}

// useUprobeMulti(programs): before load, marks uprobe programs for uprobe_multi links.
void BpfSession::UseUprobeMulti(const Napi::CallbackInfo &info)
{
	Napi::Array names = info[0].As<Napi::Array>();

	RequireOpen(info.Env(), "useUprobeMulti");
	for (uint32_t i = 0; i < names.Length(); i++) {
		std::string name = names.Get(i).As<Napi::String>();
		Check(info.Env(), tlstap_core_use_uprobe_multi(core_, name.c_str()));
	}
}

// attachUprobeMulti(program, binaryPath, offsets: BigUint64Array, cookies: BigUint64Array, pid, retprobe)
Napi::Value BpfSession::AttachUprobeMulti(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string prog = info[0].As<Napi::String>();
	std::string binary = info[1].As<Napi::String>();
	Napi::BigUint64Array offsets = info[2].As<Napi::BigUint64Array>();
	Napi::BigUint64Array cookies = info[3].As<Napi::BigUint64Array>();
	int pid = info[4].As<Napi::Number>().Int32Value();
	bool retprobe = info[5].As<Napi::Boolean>().Value();

	RequireOpen(env, "attachUprobeMulti");
	if (offsets.ElementLength() != cookies.ElementLength())
		ThrowBpfError(env, "attachUprobeMulti", EINVAL, "offsets and cookies must be non-empty and of one length");
	int link = Check(env, tlstap_core_attach_uprobe_multi(core_, prog.c_str(), binary.c_str(), offsets.Data(),
							      cookies.Data(), static_cast<uint32_t>(offsets.ElementLength()),
							      pid, retprobe));
	return Napi::Number::New(env, link);
}

// A record, still in the ring buffer: copied into the current batch, and its space is given back
// to the kernel as soon as this returns.
int BpfSession::OnSample(void *ctx, const void *data, size_t size)
{
	static_cast<BpfSession *>(ctx)->courier_->Append(data, size);
	return 0;
}

// This thread only moves bytes (a copy per record, the odd spill write), and while it waits for a
// CPU the ring buffer fills and the kernel drops: it goes before the traced programs and the
// outputs. A nice value only counts within the thread's own group (autogroup, cgroup): a busy
// neighbour in another group kept it waiting up to 75 ms with 16 KiB calls. So it runs as SCHED_FIFO
// at the lowest priority, which it leaves whenever the ring is empty (it never spins: it sleeps in
// epoll, and while the spill is full); children do not inherit it. Where that is refused
// (unprivileged, a cgroup without real-time time), nice -10, else the default.
static void RaisePollerPriority()
{
	struct sched_param param = {};
	param.sched_priority = kPollerRtPriority;
	if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) == 0)
		return;
	setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kPollerNice);
}

void BpfSession::PollLoop()
{
	pthread_setname_np(pthread_self(), "tlstap-poll");
	RaisePollerPriority();
	while (!stop_.load(std::memory_order_relaxed)) {
		int ret = tlstap_core_poll(core_, poll_timeout_ms_);
		if (ret < 0 && ret != -EINTR) {
			poll_error_ = -ret;
			break;
		}
		// The program wakes us only for a backlog; what came in quietly is read on the timer.
		ret = tlstap_core_consume(core_);
		if (ret < 0) {
			poll_error_ = -ret;
			break;
		}
		courier_->Flush();
	}
	// Whatever the kernel wrote before stop (probes are detached first) is still delivered.
	tlstap_core_consume(core_);
	courier_->Finish();
}

// startPolling(ringMap, onBatch(buffer, count), {batchBytes, timeoutMs})
Napi::Value BpfSession::StartPolling(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string map_name = info[0].As<Napi::String>();
	Napi::Function on_batch = info[1].As<Napi::Function>();
	Napi::Object opts = info[2].As<Napi::Object>();

	RequireOpen(env, "startPolling");
	if (polling_)
		ThrowBpfError(env, "startPolling", EBUSY, "a session polls its ring buffer once");
	Check(env, tlstap_core_ring_open(core_, map_name.c_str(), OnSample, this));
	poll_timeout_ms_ = opts.Get("timeoutMs").As<Napi::Number>().Int32Value();
	auto limit = [&](const char *key, double fallback) {
		Napi::Value v = opts.Get(key);
		return static_cast<uint64_t>(v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback);
	};
	Courier::Options options = {
		opts.Get("batchBytes").As<Napi::Number>().Uint32Value(),
		kMaxRecordBytes,
		poll_timeout_ms_,
		{limit("spillMemoryBytes", kSpillMemoryBytes), limit("spillFileBytes", kSpillFileBytes), nullptr},
	};

	auto *stopped = new Napi::Promise::Deferred(env);
	Napi::Promise promise = stopped->Promise();
	stop_ = false;
	// The end below uses this object: keep it alive until it ran.
	Ref();
	courier_ = std::make_unique<Courier>(env, on_batch, options, [this, stopped](Napi::Env env) {
		// On the JS thread, once the final batch was delivered.
		if (poller_.joinable())
			poller_.join();
		polling_ = false;
		if (poll_error_)
			stopped->Resolve(Napi::String::New(env, std::string("ring_buffer__poll: ") + strerror(poll_error_)));
		else
			stopped->Resolve(env.Undefined());
		delete stopped;
		Unref();
	});
	polling_ = true;
	poller_ = std::thread(&BpfSession::PollLoop, this);
	// Resolves after the final batch was delivered; with an error string if polling failed.
	return promise;
}

// stopPolling(): asks the thread to drain and finish; the promise from startPolling settles.
Napi::Value BpfSession::StopPolling(const Napi::CallbackInfo &info)
{
	stop_ = true;
	return info.Env().Undefined();
}

// pausePolling(paused): stops or resumes delivery to JS (backpressure from the outputs); the
// ring buffer is still read, into the spill.
void BpfSession::PausePolling(const Napi::CallbackInfo &info)
{
	if (courier_)
		courier_->Pause(info[0].As<Napi::Boolean>().Value());
}

// spillStats() -> see CourierStats: undefined before startPolling.
Napi::Value BpfSession::SpillStats(const Napi::CallbackInfo &info)
{
	if (!courier_)
		return info.Env().Undefined();
	return CourierStats(info.Env(), *courier_);
}

// releaseBatch(buffer): JS is done with a batch (see ReleaseBatch in courier.h).
void BpfSession::ReleaseBatch(const Napi::CallbackInfo &info)
{
	tlstap::ReleaseBatch(info.Env(), info[0], courier_.get());
}

// sumPercpuArray(map) -> bigint[]: each key's value summed over every possible CPU.
Napi::Value BpfSession::SumPercpuArray(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string name = info[0].As<Napi::String>();
	uint64_t values[kMaxPercpuKeys];

	RequireOpen(env, "sumPercpuArray");
	int keys = Check(env, tlstap_core_sum_percpu(core_, name.c_str(), values, kMaxPercpuKeys));
	Napi::Array sums = Napi::Array::New(env);
	for (int key = 0; key < keys; key++)
		sums.Set(static_cast<uint32_t>(key), Napi::BigInt::New(env, values[key]));
	return sums;
}

namespace {

// Detaches off the JS thread (the links are taken out of the core), so batches keep flowing to JS meanwhile.
class DetachWorker : public Napi::AsyncWorker {
public:
	DetachWorker(Napi::Env env, struct tlstap_core_links *links)
		: Napi::AsyncWorker(env), links_(links), done_(Napi::Promise::Deferred::New(env))
	{
	}
	Napi::Promise Promise() { return done_.Promise(); }
	void Execute() override
	{
		tlstap_core_links_destroy(links_);
		links_ = nullptr;
	}
	void OnOK() override { done_.Resolve(Env().Undefined()); }
	void OnError(const Napi::Error &error) override { done_.Reject(error.Value()); }

private:
	struct tlstap_core_links *links_;
	Napi::Promise::Deferred done_;
};

} // namespace

// detachAll() -> Promise: destroys the probe links; no event is produced after it resolves.
Napi::Value BpfSession::DetachAll(const Napi::CallbackInfo &info)
{
	// Links the core could not hand over (no memory) are destroyed here, on this thread.
	struct tlstap_core_links *links = tlstap_core_take_links(core_);
	tlstap_core_detach_all(core_);
	auto *worker = new DetachWorker(info.Env(), links);
	Napi::Promise promise = worker->Promise();
	worker->Queue();
	return promise;
}

void BpfSession::ReleaseAll()
{
	// Reverse order of acquisition: links, polling thread, ring buffer and object.
	tlstap_core_detach_all(core_);
	if (poller_.joinable()) {
		// Only reached when JS never waited for the stop (teardown): delivery is aborted so
		// the threads end without waiting for JS.
		stop_ = true;
		courier_->Abort();
		poller_.join();
	}
	// The courier outlives close() until here: its stats stay readable after the stop.
	courier_.reset();
	tlstap_core_close(core_);
	core_ = nullptr;
}

// close(): releases everything; call after the polling promise settled.
void BpfSession::Close(const Napi::CallbackInfo &info)
{
	if (polling_)
		ThrowBpfError(info.Env(), "close", EBUSY, "stop polling and wait for it first");
	if (loading_)
		ThrowBpfError(info.Env(), "close", EBUSY, "wait for loadAsync() to settle first");
	ReleaseAll();
}

} // namespace tlstap
