// tlstap_native: a thin N-API front door over the capture core (native/core/).
// TypeScript validates arguments before they get here.
#include <napi.h>

#include "bpf_session.h"
#include "errors.h"
#include <bpf/libbpf.h>
#include "layout.h"
#include "record_feed.h"
#include "tlstap_core.h"

namespace tlstap {

// init({ BpfError }): the error class every libbpf failure is thrown as.
static Napi::Value Init(const Napi::CallbackInfo &info)
{
	auto *data = info.Env().GetInstanceData<AddonData>();
	Napi::Object classes = info[0].As<Napi::Object>();
	data->bpf_error_class = Napi::Persistent(classes.Get("BpfError").As<Napi::Function>());
	return info.Env().Undefined();
}

static Napi::Value Layout(const Napi::CallbackInfo &info)
{
	return DescribeLayout(info.Env());
}

static Napi::Value NumPossibleCpus(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), libbpf_num_possible_cpus());
}

// probeHelper(progType, helperId) -> whether the kernel lets programs of that type call the helper.
static Napi::Value ProbeHelper(const Napi::CallbackInfo &info)
{
	auto type = static_cast<enum bpf_prog_type>(info[0].As<Napi::Number>().Uint32Value());
	auto helper = static_cast<enum bpf_func_id>(info[1].As<Napi::Number>().Uint32Value());
	tlstap_core_log_clear();
	return Napi::Boolean::New(info.Env(), libbpf_probe_bpf_helper(type, helper, nullptr) == 1);
}

static Napi::Value LibbpfVersion(const Napi::CallbackInfo &info)
{
	return Napi::String::New(info.Env(), libbpf_version_string());
}

static Napi::Object Register(Napi::Env env, Napi::Object exports)
{
	auto *data = new AddonData();
	env.SetInstanceData(data);
	tlstap_core_init();
	Napi::Function session = BpfSession::Define(env);
	data->session_class = Napi::Persistent(session);
	exports.Set("init", Napi::Function::New(env, Init));
	exports.Set("layout", Napi::Function::New(env, Layout));
	exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus));
	exports.Set("probeHelper", Napi::Function::New(env, ProbeHelper));
	exports.Set("libbpfVersion", Napi::Function::New(env, LibbpfVersion));
	exports.Set("BpfSession", session);
	exports.Set("feedRecords", Napi::Function::New(env, FeedRecords));
	return exports;
}

} // namespace tlstap

static Napi::Object RegisterAddon(Napi::Env env, Napi::Object exports)
{
	return tlstap::Register(env, exports);
}

NODE_API_MODULE(tlstap_native, RegisterAddon)
