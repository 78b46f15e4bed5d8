#include "layout.h"

#include <cstddef>

extern "C" {
#include "tlstap.h"
}

namespace tlstap {

namespace {

void Field(Napi::Env env, Napi::Object fields, const char *name, size_t offset, size_t size)
{
	Napi::Object field = Napi::Object::New(env);
	field.Set("offset", static_cast<double>(offset));
	field.Set("size", static_cast<double>(size));
	fields.Set(name, field);
}

} // namespace

#define TLSTAP_FIELD(name)                                                                         \
	Field(env, fields, #name, offsetof(struct tlstap_data_event, name),                        \
	      sizeof(((struct tlstap_data_event *)nullptr)->name))

Napi::Object DescribeLayout(Napi::Env env)
{
	Napi::Object layout = Napi::Object::New(env);
	Napi::Object fields = Napi::Object::New(env);

	TLSTAP_FIELD(ts_ns);
	TLSTAP_FIELD(ssl);
	TLSTAP_FIELD(cookie);
	TLSTAP_FIELD(kind);
	TLSTAP_FIELD(pid);
	TLSTAP_FIELD(tid);
	TLSTAP_FIELD(uid);
	TLSTAP_FIELD(total_len);
	TLSTAP_FIELD(truncated);
	TLSTAP_FIELD(chunk_offset);
	TLSTAP_FIELD(chunk_len);
	TLSTAP_FIELD(func);
	TLSTAP_FIELD(dir);
	TLSTAP_FIELD(comm);
	Field(env, fields, "data", offsetof(struct tlstap_data_event, data), 0);

	layout.Set("headerSize", static_cast<double>(sizeof(struct tlstap_data_event)));
	layout.Set("fields", fields);

	Napi::Object constants = Napi::Object::New(env);
	constants.Set("COMM_LEN", static_cast<double>(TLSTAP_COMM_LEN));
	constants.Set("CHUNK_SIZE", static_cast<double>(TLSTAP_CHUNK_SIZE));
	constants.Set("MAX_CHUNKS", static_cast<double>(TLSTAP_MAX_CHUNKS));
	constants.Set("MAX_CALL_BYTES", static_cast<double>(TLSTAP_MAX_CALL_BYTES));
	constants.Set("DEFAULT_CALL_BYTES", static_cast<double>(TLSTAP_DEFAULT_CALL_BYTES));
	constants.Set("MAX_INFLIGHT", static_cast<double>(TLSTAP_MAX_INFLIGHT));
	constants.Set("FUNC_COUNT", static_cast<double>(TLSTAP_FUNC__COUNT));
	constants.Set("EVENT_DATA", static_cast<double>(TLSTAP_EVENT_DATA));
	constants.Set("DIR_READ", static_cast<double>(TLSTAP_DIR_READ));
	constants.Set("DIR_WRITE", static_cast<double>(TLSTAP_DIR_WRITE));
	constants.Set("CTR_RINGBUF_DROPPED_EVENTS", static_cast<double>(TLSTAP_CTR_RINGBUF_DROPPED_EVENTS));
	constants.Set("CTR_RINGBUF_DROPPED_BYTES", static_cast<double>(TLSTAP_CTR_RINGBUF_DROPPED_BYTES));
	constants.Set("CTR_READ_FAULTS", static_cast<double>(TLSTAP_CTR_READ_FAULTS));
	constants.Set("CTR_READ_FAULT_BYTES", static_cast<double>(TLSTAP_CTR_READ_FAULT_BYTES));
	constants.Set("CTR_CALLS", static_cast<double>(TLSTAP_CTR_CALLS));
	constants.Set("CTR_COUNT", static_cast<double>(TLSTAP_CTR__COUNT));
	layout.Set("constants", constants);
	return layout;
}

} // namespace tlstap
