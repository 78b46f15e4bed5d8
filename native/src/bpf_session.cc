#include "bpf_session.h"

#include "errors.h"
#include "spill.h"
#include "tlstap.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <algorithm>
#include <chrono>
#include <system_error>
#include <cstring>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace tlstap {

namespace {

// uprobe_multi links (kernel 6.6+) attach many offsets of one file with one link, and detach
// with one RCU wait instead of one per probe. Debian's libbpf 1.1 and UAPI headers predate
// them, so the values come from the kernel's UAPI (enum bpf_attach_type, union bpf_attr).
constexpr unsigned kAttachUprobeMulti = 48;       // BPF_TRACE_UPROBE_MULTI
constexpr unsigned kUprobeMultiReturn = 1;        // BPF_F_UPROBE_MULTI_RETURN
constexpr size_t kLinkCreateUnion = 16;           // link_create: prog_fd, target_fd, attach_type, flags
constexpr size_t kBpfAttrSize = 128;
// What OnSample returns to end a consume call early (libbpf stops at a negative return).
constexpr int kStopConsuming = -ECANCELED;
// Batches queued for JS beyond the one it is handling; the rest wait in the spill.
constexpr size_t kQueuedBatches = 8;
// Spill limits when startPolling is given none: memory, then the file.
constexpr double kSpillMemoryBytes = 16.0 * (1 << 20);
constexpr double kSpillFileBytes = 4.0 * (1 << 30);
// How often the threads look again while waiting (a full spill, a paused output).
constexpr auto kWaitStep = std::chrono::milliseconds(2);
// The largest record the program writes, with its length frame in a batch.
constexpr size_t kMaxRecordBytes = sizeof(uint32_t) + sizeof(struct tlstap_data_event) + TLSTAP_CHUNK_SIZE;

int CreateUprobeMultiLink(int prog_fd, const char *path, const uint64_t *offsets, const uint64_t *cookies,
			  uint32_t count, bool retprobe, int pid)
{
	alignas(8) uint8_t attr[kBpfAttrSize] = {};
	auto put32 = [&](size_t at, uint32_t v) { memcpy(attr + at, &v, sizeof(v)); };
	auto put64 = [&](size_t at, uint64_t v) { memcpy(attr + at, &v, sizeof(v)); };

	put32(0, static_cast<uint32_t>(prog_fd));
	put32(8, kAttachUprobeMulti);
	// uprobe_multi { path, offsets, ref_ctr_offsets, cookies, cnt, flags, pid }
	put64(kLinkCreateUnion + 0, reinterpret_cast<uintptr_t>(path));
	put64(kLinkCreateUnion + 8, reinterpret_cast<uintptr_t>(offsets));
	put64(kLinkCreateUnion + 24, reinterpret_cast<uintptr_t>(cookies));
	put32(kLinkCreateUnion + 32, count);
	put32(kLinkCreateUnion + 36, retprobe ? kUprobeMultiReturn : 0);
	put32(kLinkCreateUnion + 40, pid > 0 ? static_cast<uint32_t>(pid) : 0);
	int fd = static_cast<int>(syscall(__NR_bpf, BPF_LINK_CREATE, attr, sizeof(attr)));
	return fd < 0 ? -errno : fd;
}

// A batch travelling from the polling thread to JS. data is null for the final "stopped" call.
struct Delivery {
	BatchPool::Batch *data;
	SharedBatchPool pool;
	uint32_t count;
};

// Each record in a batch is framed as [u32 little-endian length][bytes].
void AppendRecord(std::vector<uint8_t> &batch, const void *data, size_t size)
{
	uint32_t len = static_cast<uint32_t>(size);
	const uint8_t *len_bytes = reinterpret_cast<const uint8_t *>(&len);
	batch.insert(batch.end(), len_bytes, len_bytes + sizeof(len));
	batch.insert(batch.end(), static_cast<const uint8_t *>(data), static_cast<const uint8_t *>(data) + size);
}

int ErrnoOf(int ret)
{
	if (ret < 0)
		return -ret;
	return errno ? errno : EINVAL;
}

// Where a global of a data section (.rodata/.data/.bss) lives, from the object's BTF.
bool FindGlobal(struct bpf_object *obj, const char *section, const std::string &name, __u32 *offset, __u32 *size)
{
	struct btf *btf = bpf_object__btf(obj);
	if (!btf)
		return false;
	int sec_id = btf__find_by_name_kind(btf, section, BTF_KIND_DATASEC);
	if (sec_id < 0)
		return false;
	const struct btf_type *sec = btf__type_by_id(btf, sec_id);
	const struct btf_var_secinfo *vars = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++) {
		const struct btf_type *var = btf__type_by_id(btf, vars[i].type);
		if (name == btf__name_by_offset(btf, var->name_off)) {
			*offset = vars[i].offset;
			*size = vars[i].size;
			return true;
		}
	}
	return false;
}

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
	LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = btf.empty() ? nullptr : btf.c_str());
	ClearLibbpfLog();
	obj_ = bpf_object__open_file(path.c_str(), &opts);
	// libbpf before 1.0 returns an error pointer rather than NULL.
	if (libbpf_get_error(obj_))
		obj_ = nullptr;
	if (!obj_) {
		int err = errno;
		obj_ = nullptr;
		ThrowBpfError(info.Env(), "bpf_object__open_file", err, path);
	}
}

BpfSession::~BpfSession()
{
	ReleaseAll();
}

void BpfSession::RequireOpen(Napi::Env env, const char *op) const
{
	if (!obj_)
		ThrowBpfError(env, op, EBADF, "the session is closed");
	if (loading_)
		ThrowBpfError(env, op, EBUSY, "the program is still loading");
}

// setGlobal(section, name, bytes): writes a `const volatile` setting before load.
void BpfSession::SetGlobal(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string section = info[0].As<Napi::String>();
	std::string name = info[1].As<Napi::String>();
	Napi::Buffer<uint8_t> value = info[2].As<Napi::Buffer<uint8_t>>();
	__u32 offset = 0, size = 0;
	size_t map_size = 0;

	RequireOpen(env, "setGlobal");
	if (loaded_)
		ThrowBpfError(env, "setGlobal", EBUSY, name + ": settings must be written before load");
	struct bpf_map *map = bpf_object__find_map_by_name(obj_, section.c_str());
	if (!map || !FindGlobal(obj_, section.c_str(), name, &offset, &size))
		ThrowBpfError(env, "setGlobal", ENOENT, "no global " + name + " in " + section);
	if (value.Length() != size)
		ThrowBpfError(env, "setGlobal", EINVAL,
			      name + " is " + std::to_string(size) + " bytes, got " + std::to_string(value.Length()));
	// Before load, libbpf keeps the section's initial image in writable memory.
	uint8_t *image = static_cast<uint8_t *>(const_cast<void *>(bpf_map__initial_value(map, &map_size)));
	if (!image || offset + size > map_size)
		ThrowBpfError(env, "setGlobal", EINVAL, "initial image of " + section + " is unavailable");
	memcpy(image + offset, value.Data(), size);
}

// setMapMaxEntries(name, entries): e.g. the ring buffer's size in bytes.
void BpfSession::SetMapMaxEntries(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string name = info[0].As<Napi::String>();
	uint32_t entries = info[1].As<Napi::Number>().Uint32Value();

	RequireOpen(env, "setMapMaxEntries");
	struct bpf_map *map = bpf_object__find_map_by_name(obj_, name.c_str());
	if (!map)
		ThrowBpfError(env, "setMapMaxEntries", ENOENT, "no map " + name);
	int ret = bpf_map__set_max_entries(map, entries);
	if (ret)
		ThrowBpfError(env, "bpf_map__set_max_entries", ErrnoOf(ret), name);
}

// setAutoload(program, autoload): before load, whether the program is loaded at all.
void BpfSession::SetAutoload(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string name = info[0].As<Napi::String>();
	bool autoload = info[1].As<Napi::Boolean>().Value();

	RequireOpen(env, "setAutoload");
	struct bpf_program *prog = bpf_object__find_program_by_name(obj_, name.c_str());
	if (!prog)
		ThrowBpfError(env, "setAutoload", ENOENT, "no program " + name);
	int ret = bpf_program__set_autoload(prog, autoload);
	if (ret)
		ThrowBpfError(env, "bpf_program__set_autoload", ErrnoOf(ret), name);
}

// updateMapElem(map, key, value): after load, writes one entry of a map.
void BpfSession::UpdateMapElem(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string name = info[0].As<Napi::String>();
	Napi::Buffer<uint8_t> key = info[1].As<Napi::Buffer<uint8_t>>();
	Napi::Buffer<uint8_t> value = info[2].As<Napi::Buffer<uint8_t>>();

	RequireOpen(env, "updateMapElem");
	struct bpf_map *map = bpf_object__find_map_by_name(obj_, name.c_str());
	if (!map)
		ThrowBpfError(env, "updateMapElem", ENOENT, "no map " + name);
	int ret = bpf_map__update_elem(map, key.Data(), key.Length(), value.Data(), value.Length(), BPF_ANY);
	if (ret)
		ThrowBpfError(env, "bpf_map__update_elem", ErrnoOf(ret), name);
}

void BpfSession::Load(const Napi::CallbackInfo &info)
{
	RequireOpen(info.Env(), "load");
	ClearLibbpfLog();
	int ret = bpf_object__load(obj_);
	if (ret)
		ThrowBpfError(info.Env(), "bpf_object__load", ErrnoOf(ret), "");
	loaded_ = true;
}

namespace {

// Loads the object off the JS thread: the verifier and the kernel BTF take tens of milliseconds,
// which the JS thread spends finding the files to probe meanwhile.
class LoadWorker : public Napi::AsyncWorker {
public:
	LoadWorker(Napi::Object session, struct bpf_object *obj, bool *loading, bool *loaded)
		: Napi::AsyncWorker(session.Env()), session_(Napi::Persistent(session)), obj_(obj), loading_(loading),
		  loaded_(loaded), done_(Napi::Promise::Deferred::New(session.Env()))
	{
	}
	Napi::Promise Promise() { return done_.Promise(); }
	void Execute() override { ret_ = bpf_object__load(obj_); }
	void OnOK() override
	{
		*loading_ = false;
		if (ret_) {
			done_.Reject(MakeBpfError(Env(), "bpf_object__load", ErrnoOf(ret_), ""));
			return;
		}
		*loaded_ = true;
		done_.Resolve(Env().Undefined());
	}

private:
	Napi::ObjectReference session_; // keeps the session (and so obj_) alive while loading
	struct bpf_object *obj_;
	bool *loading_;
	bool *loaded_;
	int ret_ = 0;
	Napi::Promise::Deferred done_;
};

} // namespace

// loadAsync() -> Promise: load() on a worker thread; the session refuses every other call meanwhile.
Napi::Value BpfSession::LoadAsync(const Napi::CallbackInfo &info)
{
	RequireOpen(info.Env(), "loadAsync");
	ClearLibbpfLog();
	auto *worker = new LoadWorker(info.This().As<Napi::Object>(), obj_, &loading_, &loaded_);
	Napi::Promise promise = worker->Promise();
	loading_ = true;
	worker->Queue();
	return promise;
}

// attachUprobe(program, binaryPath, fileOffset: bigint, pid (-1 = all), retprobe, cookie: bigint) -> link index
Napi::Value BpfSession::AttachUprobe(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string prog_name = info[0].As<Napi::String>();
	std::string binary = info[1].As<Napi::String>();
	bool lossless = false;
	uint64_t offset = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
	int pid = info[3].As<Napi::Number>().Int32Value();
	bool retprobe = info[4].As<Napi::Boolean>().Value();
	uint64_t cookie = info[5].As<Napi::BigInt>().Uint64Value(&lossless);

	RequireOpen(env, "attachUprobe");
	struct bpf_program *prog = bpf_object__find_program_by_name(obj_, prog_name.c_str());
	if (!prog)
		ThrowBpfError(env, "attachUprobe", ENOENT, "no program " + prog_name);
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = cookie, .retprobe = retprobe);
	ClearLibbpfLog();
	struct bpf_link *link =
		bpf_program__attach_uprobe_opts(prog, pid, binary.c_str(), static_cast<size_t>(offset), &opts);
	if (!link) {
		int err = errno;
		ThrowBpfError(env, retprobe ? "attach uretprobe" : "attach uprobe", err,
			      binary + "+0x" + [&] {
				      char hex[32];
				      snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(offset));
				      return std::string(hex);
			      }());
	}
	links_.push_back(link);
	return Napi::Number::New(env, static_cast<double>(links_.size() - 1));
}

// attachTracepoint(program, category, name) -> link index
Napi::Value BpfSession::AttachTracepoint(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string prog_name = info[0].As<Napi::String>();
	std::string category = info[1].As<Napi::String>();
	std::string name = info[2].As<Napi::String>();

	RequireOpen(env, "attachTracepoint");
	struct bpf_program *prog = bpf_object__find_program_by_name(obj_, prog_name.c_str());
	if (!prog)
		ThrowBpfError(env, "attachTracepoint", ENOENT, "no program " + prog_name);
	ClearLibbpfLog();
	struct bpf_link *link = bpf_program__attach_tracepoint(prog, category.c_str(), name.c_str());
	if (!link) {
		int err = errno;
		ThrowBpfError(env, "attach tracepoint", err, category + ":" + name);
	}
	links_.push_back(link);
	return Napi::Number::New(env, static_cast<double>(links_.size() - 1));
}

// useUprobeMulti(programs): before load, marks uprobe programs for uprobe_multi links.
void BpfSession::UseUprobeMulti(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	Napi::Array names = info[0].As<Napi::Array>();

	RequireOpen(env, "useUprobeMulti");
	for (uint32_t i = 0; i < names.Length(); i++) {
		std::string name = names.Get(i).As<Napi::String>();
		struct bpf_program *prog = bpf_object__find_program_by_name(obj_, name.c_str());
		if (!prog)
			ThrowBpfError(env, "useUprobeMulti", ENOENT, "no program " + name);
		int ret = bpf_program__set_expected_attach_type(prog, static_cast<enum bpf_attach_type>(kAttachUprobeMulti));
		if (ret)
			ThrowBpfError(env, "bpf_program__set_expected_attach_type", ErrnoOf(ret), name);
	}
}

// attachUprobeMulti(program, binaryPath, offsets: BigUint64Array, cookies: BigUint64Array, pid, retprobe)
Napi::Value BpfSession::AttachUprobeMulti(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string prog_name = info[0].As<Napi::String>();
	std::string binary = info[1].As<Napi::String>();
	Napi::BigUint64Array offsets = info[2].As<Napi::BigUint64Array>();
	Napi::BigUint64Array cookies = info[3].As<Napi::BigUint64Array>();
	int pid = info[4].As<Napi::Number>().Int32Value();
	bool retprobe = info[5].As<Napi::Boolean>().Value();

	RequireOpen(env, "attachUprobeMulti");
	struct bpf_program *prog = bpf_object__find_program_by_name(obj_, prog_name.c_str());
	if (!prog)
		ThrowBpfError(env, "attachUprobeMulti", ENOENT, "no program " + prog_name);
	if (offsets.ElementLength() == 0 || offsets.ElementLength() != cookies.ElementLength())
		ThrowBpfError(env, "attachUprobeMulti", EINVAL, "offsets and cookies must be non-empty and of one length");
	int fd = CreateUprobeMultiLink(bpf_program__fd(prog), binary.c_str(), offsets.Data(), cookies.Data(),
				       static_cast<uint32_t>(offsets.ElementLength()), retprobe, pid);
	if (fd < 0)
		ThrowBpfError(env, retprobe ? "attach uretprobe.multi" : "attach uprobe.multi", -fd, binary);
	multi_link_fds_.push_back(fd);
	return Napi::Number::New(env, static_cast<double>(multi_link_fds_.size() - 1));
}

int BpfSession::OnSample(void *ctx, void *data, size_t size)
{
	auto *self = static_cast<BpfSession *>(ctx);
	if (!self->batch_)
		self->batch_ = self->pool_->Take();
	AppendRecord(*self->batch_, data, size);
	self->batch_count_++;
	if (self->batch_->size() >= self->batch_limit_)
		self->FlushBatch();
	return 0;
}

// Moves the current batch into the spill. While the spill is full this thread waits, the ring
// buffer fills, and the kernel counts what it cannot hold: nothing is lost in this process.
void BpfSession::FlushBatch()
{
	if (!batch_ || batch_count_ == 0)
		return;
	while (tlstap_spill_push(spill_, batch_->data(), batch_->size(), batch_count_) != 0 && !abort_.load())
		std::this_thread::sleep_for(kWaitStep);
	batch_->clear();
	batch_count_ = 0;
}

void BpfSession::PollLoop()
{
	while (!stop_.load(std::memory_order_relaxed)) {
		int ret = ring_buffer__poll(ring_, poll_timeout_ms_);
		if (ret < 0 && ret != -EINTR && ret != kStopConsuming) {
			poll_error_ = -ret;
			break;
		}
		// The program wakes us only for a backlog; what came in quietly is read on the timer.
		ret = ring_buffer__consume(ring_);
		if (ret < 0 && ret != kStopConsuming) {
			poll_error_ = -ret;
			break;
		}
		FlushBatch();
	}
	// Whatever the kernel wrote before stop (probes are detached first) is still delivered.
	ring_buffer__consume(ring_);
	FlushBatch();
	tlstap_spill_close(spill_);
}

// Hands a batch to JS: blocks while JS has kQueuedBatches waiting.
static void Deliver(Napi::ThreadSafeFunction &deliver, Delivery *delivery)
{
	auto call = [](Napi::Env env, Napi::Function callback, Delivery *d) {
		std::unique_ptr<Delivery> delivery(d);
		if (env == nullptr) { // the function is being torn down: nobody to deliver to
			d->pool->Give(d->data);
			return;
		}
		// V8 cannot see memory outside its heap: without this, batches that outlive a
		// scavenge wait for a major GC, and under load they pile up. The bytes used, not the
		// capacity: most batches are small, and overstating them makes V8 collect in vain.
		auto external = static_cast<int64_t>(d->data->size());
		Napi::MemoryManagement::AdjustExternalMemory(env, external);
		// The Buffer owns the delivery from here: its finalizer gives the batch back.
		uint32_t count = d->count;
		Delivery *owner = delivery.release();
		Napi::Buffer<uint8_t> buffer = Napi::Buffer<uint8_t>::New(
			env, owner->data->data(), owner->data->size(),
			[external](Napi::Env env, uint8_t *, Delivery *owned) {
				owned->pool->Give(owned->data);
				delete owned;
				Napi::MemoryManagement::AdjustExternalMemory(env, -external);
			},
			owner);
		callback.Call({buffer, Napi::Number::New(env, count)});
	};
	if (deliver.BlockingCall(delivery, call) != napi_ok) {
		delivery->pool->Give(delivery->data);
		delete delivery;
	}
}

// Takes batches out of the spill, oldest first, while the outputs keep up (not paused), until
// the poller closed the spill and it is empty.
void BpfSession::DeliverLoop()
{
	while (!abort_.load()) {
		if (paused_.load(std::memory_order_relaxed)) {
			std::this_thread::sleep_for(kWaitStep);
			continue;
		}
		size_t len = tlstap_spill_wait(spill_, poll_timeout_ms_);
		if (len == 0) {
			if (tlstap_spill_done(spill_))
				break;
			continue;
		}
		BatchPool::Batch *batch = pool_->Take();
		batch->resize(len);
		uint32_t count = 0;
		long got = tlstap_spill_pop(spill_, batch->data(), batch->size(), &count);
		if (got <= 0) { // a read error: counted by the spill (lost_*)
			pool_->Give(batch);
			continue;
		}
		Deliver(deliver_, new Delivery{batch, pool_, count});
	}
	deliver_.Release();
}

// startPolling(ringMap, onBatch(buffer, count), {batchBytes, timeoutMs})
Napi::Value BpfSession::StartPolling(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string map_name = info[0].As<Napi::String>();
	Napi::Function on_batch = info[1].As<Napi::Function>();
	Napi::Object opts = info[2].As<Napi::Object>();

	RequireOpen(env, "startPolling");
	if (!loaded_ || polling_ || ring_)
		ThrowBpfError(env, "startPolling", EBUSY, !loaded_ ? "load first" : "a session polls its ring buffer once");
	batch_limit_ = opts.Get("batchBytes").As<Napi::Number>().Uint32Value();
	poll_timeout_ms_ = opts.Get("timeoutMs").As<Napi::Number>().Int32Value();
	auto limit = [&](const char *key, double fallback) {
		Napi::Value v = opts.Get(key);
		return static_cast<uint64_t>(v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback);
	};
	struct tlstap_spill_limits limits = {limit("spillMemoryBytes", kSpillMemoryBytes), limit("spillFileBytes", kSpillFileBytes), nullptr};
	struct bpf_map *map = bpf_object__find_map_by_name(obj_, map_name.c_str());
	if (!map)
		ThrowBpfError(env, "startPolling", ENOENT, "no map " + map_name);
	// Room for the limit and the record that crosses it: a batch is never reallocated. Enough
	// idle batches are kept for the queue to JS to cycle without allocating.
	pool_ = std::make_shared<BatchPool>(batch_limit_ + kMaxRecordBytes, kQueuedBatches + 2);
	ring_ = ring_buffer__new(bpf_map__fd(map), OnSample, this, nullptr);
	if (!ring_)
		ThrowBpfError(env, "ring_buffer__new", errno, map_name);
	spill_ = tlstap_spill_new(&limits);
	if (!spill_)
		ThrowBpfError(env, "tlstap_spill_new", errno, map_name);

	auto *stopped = new Napi::Promise::Deferred(env);
	Napi::Promise promise = stopped->Promise();
	stop_ = false;
	// The finalizer below uses this object: keep it alive until the function is released.
	Ref();
	deliver_ = Napi::ThreadSafeFunction::New(
		env, on_batch, "tlstap-ring-buffer", kQueuedBatches, 1, stopped, [this](Napi::Env env, Napi::Promise::Deferred *done) {
			// Runs on the JS thread once the delivery thread released the function.
			if (poller_.joinable())
				poller_.join();
			if (deliverer_.joinable())
				deliverer_.join();
			polling_ = false;
			Unref();
			if (poll_error_)
				done->Resolve(Napi::String::New(env, std::string("ring_buffer__poll: ") + strerror(poll_error_)));
			else
				done->Resolve(env.Undefined());
			delete done;
		});
	polling_ = true;
	poller_ = std::thread(&BpfSession::PollLoop, this);
	deliverer_ = std::thread(&BpfSession::DeliverLoop, this);
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
	paused_ = info[0].As<Napi::Boolean>().Value();
}

// spillStats() -> {bytes, fileBytes, peakBytes, peakFileBytes, delayMs, maxDelayMs, fullWaits,
// lostBlocks, lostBytes, lostRecords, fileError}: undefined before startPolling.
Napi::Value BpfSession::SpillStats(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (!spill_)
		return env.Undefined();
	struct tlstap_spill_stats st;
	tlstap_spill_get_stats(spill_, &st);
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
	return out;
}

// releaseBatch(buffer): JS is done with a batch. Detaching its memory frees it at once (the
// finalizer gives it back to the pool on the JS thread) instead of whenever V8 collects the
// Buffer, which under load let hundreds of MiB of batches wait; any view still held by mistake
// now reads as empty rather than as later records.
void BpfSession::ReleaseBatch(const Napi::CallbackInfo &info)
{
	if (!info[0].IsBuffer())
		ThrowBpfError(info.Env(), "releaseBatch", EINVAL, "expected a batch Buffer");
	Napi::Buffer<uint8_t> batch = info[0].As<Napi::Buffer<uint8_t>>();
	Napi::ArrayBuffer memory = batch.ArrayBuffer();
	if (memory.IsDetached())
		return;
	// A batch is a whole external ArrayBuffer; refuse a slice of anything else.
	if (batch.ByteOffset() != 0 || batch.ByteLength() != memory.ByteLength())
		ThrowBpfError(info.Env(), "releaseBatch", EINVAL, "not a batch this session delivered");
	memory.Detach();
}

// sumPercpuArray(map) -> bigint[]: each key's value summed over every possible CPU.
Napi::Value BpfSession::SumPercpuArray(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string name = info[0].As<Napi::String>();

	RequireOpen(env, "sumPercpuArray");
	struct bpf_map *map = bpf_object__find_map_by_name(obj_, name.c_str());
	if (!map || bpf_map__type(map) != BPF_MAP_TYPE_PERCPU_ARRAY || bpf_map__value_size(map) != 8)
		ThrowBpfError(env, "sumPercpuArray", EINVAL, name + " is not a per-CPU array of u64");
	int cpus = libbpf_num_possible_cpus();
	if (cpus <= 0)
		ThrowBpfError(env, "libbpf_num_possible_cpus", -cpus, "");
	std::vector<uint64_t> values(cpus);
	Napi::Array sums = Napi::Array::New(env);
	for (uint32_t key = 0; key < bpf_map__max_entries(map); key++) {
		int ret = bpf_map__lookup_elem(map, &key, sizeof(key), values.data(), values.size() * 8, 0);
		if (ret)
			ThrowBpfError(env, "bpf_map__lookup_elem", ErrnoOf(ret), name);
		uint64_t sum = 0;
		for (uint64_t v : values)
			sum += v;
		sums.Set(key, Napi::BigInt::New(env, sum));
	}
	return sums;
}

namespace {

// Destroys links. Each detach waits for the kernel's RCU grace period (~0.2 s here), so they
// run on a few parallel threads, which share the wait, instead of one after another.
void DestroyInParallel(std::vector<struct bpf_link *> &links, std::vector<int> &link_fds)
{
	constexpr size_t kMaxWorkers = 32;
	const size_t total = links.size() + link_fds.size();
	std::atomic<size_t> next{0};
	auto work = [&] {
		for (size_t i = next++; i < total; i = next++) {
			if (i < links.size())
				bpf_link__destroy(links[i]);
			else
				close(link_fds[i - links.size()]);
		}
	};
	std::vector<std::thread> workers;
	try {
		for (size_t n = 0; n < std::min(total, kMaxWorkers); n++)
			workers.emplace_back(work);
	} catch (const std::system_error &) {
		// No more threads: the ones started (or this one) finish the list.
	}
	work();
	for (std::thread &worker : workers)
		worker.join();
	links.clear();
	link_fds.clear();
}

// Detaches off the JS thread, so batches keep flowing to JS meanwhile.
class DetachWorker : public Napi::AsyncWorker {
public:
	DetachWorker(Napi::Env env, std::vector<struct bpf_link *> links, std::vector<int> link_fds)
		: Napi::AsyncWorker(env), links_(std::move(links)), link_fds_(std::move(link_fds)),
		  done_(Napi::Promise::Deferred::New(env))
	{
	}
	Napi::Promise Promise() { return done_.Promise(); }
	void Execute() override { DestroyInParallel(links_, link_fds_); }
	void OnOK() override { done_.Resolve(Env().Undefined()); }
	void OnError(const Napi::Error &error) override { done_.Reject(error.Value()); }

private:
	std::vector<struct bpf_link *> links_;
	std::vector<int> link_fds_;
	Napi::Promise::Deferred done_;
};

} // namespace

void BpfSession::DestroyLinks()
{
	DestroyInParallel(links_, multi_link_fds_);
}

// detachAll() -> Promise: destroys the probe links; no event is produced after it resolves.
Napi::Value BpfSession::DetachAll(const Napi::CallbackInfo &info)
{
	auto *worker = new DetachWorker(info.Env(), std::move(links_), std::move(multi_link_fds_));
	links_.clear();
	multi_link_fds_.clear();
	Napi::Promise promise = worker->Promise();
	worker->Queue();
	return promise;
}

void BpfSession::ReleaseAll()
{
	// Reverse order of acquisition: links, polling thread, ring buffer, object.
	DestroyLinks();
	if (poller_.joinable()) {
		stop_ = true;
		abort_ = true;
		// Only reached when JS never waited for the stop (teardown): the function is aborted
		// so a blocked delivery returns, then the threads end.
		deliver_.Abort();
		poller_.join();
		if (deliverer_.joinable())
			deliverer_.join();
	}
	if (ring_) {
		ring_buffer__free(ring_);
		ring_ = nullptr;
	}
	if (batch_)
		pool_->Give(batch_);
	batch_ = nullptr;
	// The spill outlives close() until here: its stats stay readable after the stop.
	tlstap_spill_free(spill_);
	spill_ = nullptr;
	if (obj_) {
		bpf_object__close(obj_);
		obj_ = nullptr;
	}
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
