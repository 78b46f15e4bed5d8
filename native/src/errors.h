// Errors from the capture core become instances of the TypeScript class BpfError (passed in by init()).
#pragma once
#include <napi.h>
#include <string>

struct tlstap_core;

namespace tlstap {

// Per-environment state of the addon (napi instance data): no process globals.
struct AddonData {
	Napi::FunctionReference bpf_error_class;
	Napi::FunctionReference session_class;
};

// BpfError(message, {op, errno, libbpfLog}) as a value, for rejecting a promise. err is a negative or positive errno.
Napi::Value MakeBpfError(Napi::Env env, const std::string &op, int err, const std::string &context);

// Throws MakeBpfError(...) as a JS exception.
[[noreturn]] void ThrowBpfError(Napi::Env env, const std::string &op, int err, const std::string &context);

// The core's last failure (its op and context; err is the negative errno it returned) as a BpfError.
Napi::Value MakeCoreError(Napi::Env env, const struct tlstap_core *core, int err);
[[noreturn]] void ThrowCoreError(Napi::Env env, const struct tlstap_core *core, int err);

} // namespace tlstap
