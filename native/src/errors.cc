#include "errors.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace tlstap {

namespace {

// libbpf's print callback is process-wide by libbpf's design; this keeps its tail.
constexpr size_t kLogTailBytes = 8192;
std::mutex log_mutex;
std::string log_tail;
bool log_to_stderr = false;

int PrintToTail(enum libbpf_print_level level, const char *format, va_list args)
{
	va_list copy;

	va_copy(copy, args);
	int needed = vsnprintf(nullptr, 0, format, copy);
	va_end(copy);
	if (needed <= 0)
		return 0;
	// One message can be a whole verifier log: format it whole, keep its end.
	std::string line(static_cast<size_t>(needed) + 1, '\0');
	vsnprintf(line.data(), line.size(), format, args);
	line.resize(static_cast<size_t>(needed));
	if (log_to_stderr)
		fputs(line.c_str(), stderr);
	if (level == LIBBPF_DEBUG && !log_to_stderr)
		return 0;
	std::lock_guard<std::mutex> lock(log_mutex);
	log_tail += line;
	if (log_tail.size() > kLogTailBytes)
		log_tail.erase(0, log_tail.size() - kLogTailBytes);
	return 0;
}

} // namespace

void InstallLibbpfPrinter()
{
	log_to_stderr = getenv("TLSTAP_LIBBPF_DEBUG") != nullptr;
	libbpf_set_print(PrintToTail);
}

std::string LibbpfLogTail()
{
	std::lock_guard<std::mutex> lock(log_mutex);
	return log_tail;
}

void ClearLibbpfLog()
{
	std::lock_guard<std::mutex> lock(log_mutex);
	log_tail.clear();
}

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

} // namespace tlstap
