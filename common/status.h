// Error handling for all of tokenswift: absl::Status / absl::StatusOr.
//
// A leaf: kernels/, parallel/ and runtime/ all include it, and it includes only abseil.
//
// Library code never exits; it returns a Status whose message is one line naming the file, field
// or flag and what was expected. Only main() turns a Status into a message and an exit code:
//   bad input (InvalidArgument from BadInput, NotFound) -> 2; everything else -> 1, including an
//   internal check that fails (OutOfRange, FailedPrecondition, Internal): not the user's fault.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace ts {

using absl::Status;
using absl::StatusOr;

namespace status_internal {
// Debian's abseil keeps its own string_view: pass std::string_view through as one.
template <typename T>
decltype(auto) Piece(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return absl::string_view(v.data(), v.size());
  } else {
    return (v);
  }
}
}  // namespace status_internal

// The pieces joined as absl::StrCat does, also accepting std::string_view.
template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(status_internal::Piece(args)...);
}

// A problem with what the user gave us (a file, a field in it, a flag).
template <typename... Args>
Status BadInput(const Args&... args) {
  return absl::InvalidArgumentError(Cat(args...));
}

// A failure while running that is not the input's fault.
template <typename... Args>
Status RuntimeFailure(const Args&... args) {
  return absl::InternalError(Cat(args...));
}

inline int ExitCodeFor(const Status& s) {
  if (s.ok()) return 0;
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      return 2;
    default:
      return 1;
  }
}

}  // namespace ts

#define TS_STATUS_CONCAT_INNER_(a, b) a##b
#define TS_STATUS_CONCAT_(a, b) TS_STATUS_CONCAT_INNER_(a, b)

#define TS_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status ts_status_ = (expr);      \
    if (!ts_status_.ok()) return ts_status_; \
  } while (0)

#define TS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(*tmp)

#define TS_ASSIGN_OR_RETURN(lhs, expr) \
  TS_ASSIGN_OR_RETURN_IMPL_(TS_STATUS_CONCAT_(ts_statusor_, __LINE__), lhs, expr)
