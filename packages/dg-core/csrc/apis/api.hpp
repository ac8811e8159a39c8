// Registers every GEMM entry point of dg.core._C. Each family's checks live in its own header.
#pragma once

#include <nanobind/nanobind.h>

namespace dg::api {

inline void register_all(nanobind::module_& m) { (void)m; }

}  // namespace dg::api
