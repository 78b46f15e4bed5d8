// Reports the shared header's layout (sizeof/offsetof/constants) so TypeScript can check its mirror.
#pragma once
#include <napi.h>

namespace tlstap {
Napi::Object DescribeLayout(Napi::Env env);
}
