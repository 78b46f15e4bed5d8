// Errors from libbpf become instances of the TypeScript class BpfError (passed in by init()).
#pragma once
#include <napi.h>
#include <string>

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

// Routes libbpf's messages to a bounded in-memory tail (and stderr when TLSTAP_LIBBPF_DEBUG is set),
// so a failed load can carry the verifier's last words in its error.
void InstallLibbpfPrinter();
std::string LibbpfLogTail();
void ClearLibbpfLog();

} // namespace tlstap
