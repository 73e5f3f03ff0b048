#include "base/fail.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace xinterp::internal {

void fail(const char* fmt, ...) noexcept {
  char buf[512];
  static constexpr char kPrefix[] = "xinterp: fatal: ";
  std::memcpy(buf, kPrefix, sizeof(kPrefix) - 1);
  va_list ap;
  va_start(ap, fmt);
  // vsnprintf does not allocate for plain %s/%d/%llu conversions in glibc.
  int n = std::vsnprintf(buf + sizeof(kPrefix) - 1, sizeof(buf) - sizeof(kPrefix), fmt, ap);
  va_end(ap);
  size_t len = sizeof(kPrefix) - 1 + (n < 0 ? 0 : static_cast<size_t>(n));
  if (len > sizeof(buf) - 2) len = sizeof(buf) - 2;
  buf[len++] = '\n';
  ssize_t ignored = ::write(2, buf, len);
  (void)ignored;
  std::abort();
}

}  // namespace xinterp::internal
