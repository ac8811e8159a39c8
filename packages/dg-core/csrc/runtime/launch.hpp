// Kernel launch through cuLaunchKernelEx: cluster dimensions, dynamic shared memory, programmatic dependent
// launch, the caller's stream. Nothing here synchronises, so launches are capturable in a CUDA graph.
#pragma once

#include <cstdint>

#include "driver.hpp"

namespace dg {

struct Dim3 {
    uint32_t x = 1, y = 1, z = 1;
};

struct LaunchConfig {
    Dim3 grid, block;
    uint32_t smem = 0;
    CUstream stream = nullptr;
    uint32_t cluster_x = 1, cluster_y = 1, cluster_z = 1;
    bool pdl = false;
};

inline void launch_function(CUfunction fn, const LaunchConfig& cfg, void** params, void** extra = nullptr) {
    CUlaunchAttribute attrs[2];
    unsigned n_attrs = 0;
    if (cfg.cluster_x * cfg.cluster_y * cfg.cluster_z > 1) {
        attrs[n_attrs].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
        attrs[n_attrs].value.clusterDim.x = cfg.cluster_x;
        attrs[n_attrs].value.clusterDim.y = cfg.cluster_y;
        attrs[n_attrs].value.clusterDim.z = cfg.cluster_z;
        ++n_attrs;
    }
    if (cfg.pdl) {
        attrs[n_attrs].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attrs[n_attrs].value.programmaticStreamSerializationAllowed = 1;
        ++n_attrs;
    }
    CUlaunchConfig lc{};
    lc.gridDimX = cfg.grid.x;
    lc.gridDimY = cfg.grid.y;
    lc.gridDimZ = cfg.grid.z;
    lc.blockDimX = cfg.block.x;
    lc.blockDimY = cfg.block.y;
    lc.blockDimZ = cfg.block.z;
    lc.sharedMemBytes = cfg.smem;
    lc.hStream = cfg.stream;
    lc.attrs = n_attrs ? attrs : nullptr;
    lc.numAttrs = n_attrs;
    DG_CU_CHECK(DG_CU(cuLaunchKernelEx)(&lc, fn, params, extra));
}

}  // namespace dg
