// A tiny kernel for the JIT tests: out[i] = in[i] * kScale + offset.
#pragma once

namespace dg_test {

template <int kScale>
__global__ void probe_impl(float* out, const float* in, unsigned int n, float offset) {
    const unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i] * kScale + offset;
}

}  // namespace dg_test
