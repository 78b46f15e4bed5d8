// tlstap_native: a thin layer over libbpf. TypeScript validates arguments before they get here.
#include <napi.h>

#include "bpf_session.h"
#include "errors.h"
#include <bpf/libbpf.h>
#include "layout.h"

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

static Napi::Object Register(Napi::Env env, Napi::Object exports)
{
	auto *data = new AddonData();
	env.SetInstanceData(data);
#if LIBBPF_MAJOR_VERSION < 1
	// libbpf 0.x returns error pointers from its open and attach calls unless told otherwise; every
	// check in this addon is libbpf 1.x's convention: NULL (or a negative number) and errno.
	libbpf_set_strict_mode(static_cast<enum libbpf_strict_mode>(LIBBPF_STRICT_CLEAN_PTRS | LIBBPF_STRICT_DIRECT_ERRS));
#endif
	InstallLibbpfPrinter();
	Napi::Function session = BpfSession::Define(env);
	data->session_class = Napi::Persistent(session);
	exports.Set("init", Napi::Function::New(env, Init));
	exports.Set("layout", Napi::Function::New(env, Layout));
	exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus));
	exports.Set("BpfSession", session);
	return exports;
}

} // namespace tlstap

static Napi::Object RegisterAddon(Napi::Env env, Napi::Object exports)
{
	return tlstap::Register(env, exports);
}

NODE_API_MODULE(tlstap_native, RegisterAddon)
