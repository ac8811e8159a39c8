// Exception types of dg-core's host code. The bindings map them to Python exceptions:
//   dg::ValueError -> ValueError, dg::TypeError -> TypeError, dg::CudaError -> dg.core.CudaError,
//   dg::CompileError -> dg.core.CompileError, everything else -> RuntimeError.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace dg {

struct ValueError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

struct TypeError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

struct CudaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct CompileError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Checks a precondition that a caller can violate; the message names the argument and what it needs.
#define DG_CHECK_VALUE(cond, ...)                               \
    do {                                                        \
        if (!(cond)) [[unlikely]]                               \
            throw ::dg::ValueError(::fmt::format(__VA_ARGS__)); \
    } while (0)

#define DG_CHECK_TYPE(cond, ...)                               \
    do {                                                       \
        if (!(cond)) [[unlikely]]                              \
            throw ::dg::TypeError(::fmt::format(__VA_ARGS__)); \
    } while (0)

// Internal invariant: a failure is a bug in dg, reported with its location.
#define DG_ASSERT(cond)                                                                                        \
    do {                                                                                                       \
        if (!(cond)) [[unlikely]]                                                                              \
            throw std::logic_error(::fmt::format("dg internal error ({}:{}): {}", __FILE__, __LINE__, #cond)); \
    } while (0)

}  // namespace dg
