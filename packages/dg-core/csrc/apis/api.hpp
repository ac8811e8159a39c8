// Registers every GEMM entry point of dg.core._C. Each family's checks live in its own header.
#pragma once

#include <nanobind/nanobind.h>

#include "fp8_gemm.hpp"

namespace dg::api {

inline void register_all(nanobind::module_& m) {
    register_fp8_gemm(m);
}

}  // namespace dg::api
