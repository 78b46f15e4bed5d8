#include "errors.h"

#include "tlstap_core.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tlstap {

namespace {

std::string LibbpfLogTail()
{
	char tail[8192];
	size_t n = tlstap_core_log(tail, sizeof(tail));
	return std::string(tail, n);
}

} // namespace

Napi::Value MakeBpfError(Napi::Env env, const std::string &op, int err, const std::string &context)
{
	int code = err < 0 ? -err : err;
	auto *data = env.GetInstanceData<AddonData>();
	// libbpf's own codes (LIBBPF_ERRNO__FORMAT and the like, 4000 and up) have no strerror() text.
	char text[128];
	if (libbpf_strerror(code, text, sizeof(text)) != 0)
		snprintf(text, sizeof(text), "%s", strerror(code));
	std::string message = op + " failed: " + text;
	if (!context.empty())
		message += " (" + context + ")";

	Napi::Object details = Napi::Object::New(env);
	details.Set("op", op);
	details.Set("errno", code);
	details.Set("libbpfLog", LibbpfLogTail());
	if (data == nullptr || data->bpf_error_class.IsEmpty())
		return Napi::Error::New(env, message).Value();
	return data->bpf_error_class.New({Napi::String::New(env, message), details});
}

void ThrowBpfError(Napi::Env env, const std::string &op, int err, const std::string &context)
{
	throw Napi::Error(env, MakeBpfError(env, op, err, context));
}

Napi::Value MakeCoreError(Napi::Env env, const struct tlstap_core *core, int err)
{
	return MakeBpfError(env, tlstap_core_error_op(core), err, tlstap_core_error_context(core));
}

void ThrowCoreError(Napi::Env env, const struct tlstap_core *core, int err)
{
	throw Napi::Error(env, MakeCoreError(env, core, err));
}

} // namespace tlstap
