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

// Offsets are reported flat: the common header's fields at their place in the record.
#define FIELD_OF(type, fields, name, member)                                                       \
	Field(env, fields, name, offsetof(struct type, member), sizeof(((struct type *)nullptr)->member))

#define HEADER_FIELDS(type, fields)                                                                \
	FIELD_OF(type, fields, "ts_ns", h.ts_ns);                                                  \
	FIELD_OF(type, fields, "ssl", h.ssl);                                                      \
	FIELD_OF(type, fields, "cookie", h.cookie);                                                \
	FIELD_OF(type, fields, "conn_id", h.conn_id);                                              \
	FIELD_OF(type, fields, "kind", h.kind);                                                    \
	FIELD_OF(type, fields, "pid", h.pid);                                                      \
	FIELD_OF(type, fields, "tid", h.tid);                                                      \
	FIELD_OF(type, fields, "uid", h.uid);                                                      \
	FIELD_OF(type, fields, "comm", h.comm)

static Napi::Object DataLayout(Napi::Env env)
{
	Napi::Object layout = Napi::Object::New(env);
	Napi::Object fields = Napi::Object::New(env);

	HEADER_FIELDS(tlstap_data_event, fields);
	FIELD_OF(tlstap_data_event, fields, "total_len", total_len);
	FIELD_OF(tlstap_data_event, fields, "truncated", truncated);
	FIELD_OF(tlstap_data_event, fields, "chunk_offset", chunk_offset);
	FIELD_OF(tlstap_data_event, fields, "chunk_len", chunk_len);
	FIELD_OF(tlstap_data_event, fields, "seq", seq);
	FIELD_OF(tlstap_data_event, fields, "fd", fd);
	FIELD_OF(tlstap_data_event, fields, "func", func);
	FIELD_OF(tlstap_data_event, fields, "dir", dir);
	FIELD_OF(tlstap_data_event, fields, "flags", flags);
	Field(env, fields, "data", offsetof(struct tlstap_data_event, data), 0);
	layout.Set("size", static_cast<double>(sizeof(struct tlstap_data_event)));
	layout.Set("fields", fields);
	return layout;
}

static Napi::Object ConnLayout(Napi::Env env)
{
	Napi::Object layout = Napi::Object::New(env);
	Napi::Object fields = Napi::Object::New(env);

	HEADER_FIELDS(tlstap_conn_event, fields);
	FIELD_OF(tlstap_conn_event, fields, "fd", fd);
	FIELD_OF(tlstap_conn_event, fields, "family", family);
	FIELD_OF(tlstap_conn_event, fields, "lport", lport);
	FIELD_OF(tlstap_conn_event, fields, "rport", rport);
	FIELD_OF(tlstap_conn_event, fields, "reason", reason);
	FIELD_OF(tlstap_conn_event, fields, "seq", seq);
	FIELD_OF(tlstap_conn_event, fields, "laddr", laddr);
	FIELD_OF(tlstap_conn_event, fields, "raddr", raddr);
	layout.Set("size", static_cast<double>(sizeof(struct tlstap_conn_event)));
	layout.Set("fields", fields);
	return layout;
}

static Napi::Object CountersLayout(Napi::Env env)
{
	Napi::Object layout = Napi::Object::New(env);
	Napi::Object fields = Napi::Object::New(env);

	HEADER_FIELDS(tlstap_counters_event, fields);
	FIELD_OF(tlstap_counters_event, fields, "values", values);
	layout.Set("size", static_cast<double>(sizeof(struct tlstap_counters_event)));
	layout.Set("fields", fields);
	return layout;
}

#define CONSTANT(name, value) constants.Set(name, static_cast<double>(value))

Napi::Object DescribeLayout(Napi::Env env)
{
	Napi::Object layout = Napi::Object::New(env);
	layout.Set("data", DataLayout(env));
	layout.Set("conn", ConnLayout(env));
	layout.Set("counters", CountersLayout(env));

	Napi::Object constants = Napi::Object::New(env);
	CONSTANT("COMM_LEN", TLSTAP_COMM_LEN);
	CONSTANT("CHUNK_SIZE", TLSTAP_CHUNK_SIZE);
	CONSTANT("MAX_CHUNKS", TLSTAP_MAX_CHUNKS);
	CONSTANT("MAX_CALL_BYTES", TLSTAP_MAX_CALL_BYTES);
	CONSTANT("DEFAULT_CALL_BYTES", TLSTAP_DEFAULT_CALL_BYTES);
	CONSTANT("MAX_INFLIGHT", TLSTAP_MAX_INFLIGHT);
	CONSTANT("MAX_CONNS", TLSTAP_MAX_CONNS);
	CONSTANT("FUNC_COUNT", TLSTAP_FUNC__COUNT);
	CONSTANT("FILE_AMBIGUOUS", TLSTAP_FILE_AMBIGUOUS);
	CONSTANT("PAGE_OFFSET_MASK", TLSTAP_PAGE_OFFSET_MASK);
	CONSTANT("FUNC_DATA_COUNT", TLSTAP_FUNC__DATA_COUNT);
	CONSTANT("FUNC_LIBRARY_COUNT", TLSTAP_FUNC__LIBRARY_COUNT);
	CONSTANT("EVENT_DATA", TLSTAP_EVENT_DATA);
	CONSTANT("EVENT_CONN_OPEN", TLSTAP_EVENT_CONN_OPEN);
	CONSTANT("EVENT_CONN_FD", TLSTAP_EVENT_CONN_FD);
	CONSTANT("EVENT_CONN_CLOSE", TLSTAP_EVENT_CONN_CLOSE);
	CONSTANT("EVENT_PROCESS_EXIT", TLSTAP_EVENT_PROCESS_EXIT);
	CONSTANT("EVENT_COUNTERS", TLSTAP_EVENT_COUNTERS);
	CONSTANT("DIR_READ", TLSTAP_DIR_READ);
	CONSTANT("DIR_WRITE", TLSTAP_DIR_WRITE);
	CONSTANT("FLAG_FD_CONFLICT", TLSTAP_FLAG_FD_CONFLICT);
	CONSTANT("REASON_NONE", TLSTAP_REASON_NONE);
	CONSTANT("REASON_NO_FD", TLSTAP_REASON_NO_FD);
	CONSTANT("REASON_NOT_SOCKET", TLSTAP_REASON_NOT_SOCKET);
	CONSTANT("REASON_NOT_INET", TLSTAP_REASON_NOT_INET);
	CONSTANT("REASON_FD_UNREADABLE", TLSTAP_REASON_FD_UNREADABLE);
	CONSTANT("REASON_SHUTDOWN", TLSTAP_REASON_SHUTDOWN);
	CONSTANT("REASON_FREE", TLSTAP_REASON_FREE);
	CONSTANT("REASON_FD_CLOSED", TLSTAP_REASON_FD_CLOSED);
	CONSTANT("REASON_NO_BTF", TLSTAP_REASON_NO_BTF);
	CONSTANT("CTR_RINGBUF_DROPPED_EVENTS", TLSTAP_CTR_RINGBUF_DROPPED_EVENTS);
	CONSTANT("CTR_RINGBUF_DROPPED_BYTES", TLSTAP_CTR_RINGBUF_DROPPED_BYTES);
	CONSTANT("CTR_READ_FAULTS", TLSTAP_CTR_READ_FAULTS);
	CONSTANT("CTR_READ_FAULT_BYTES", TLSTAP_CTR_READ_FAULT_BYTES);
	CONSTANT("CTR_CALLS", TLSTAP_CTR_CALLS);
	CONSTANT("CTR_UNTRACKED_CALLS", TLSTAP_CTR_UNTRACKED_CALLS);
	CONSTANT("CTR_READ_FAULT_CALLS", TLSTAP_CTR_READ_FAULT_CALLS);
	CONSTANT("CTR_EXIT_CUT_WRITES", TLSTAP_CTR_EXIT_CUT_WRITES);
	CONSTANT("CTR_COUNT", TLSTAP_CTR__COUNT);
	layout.Set("constants", constants);
	return layout;
}

} // namespace tlstap
