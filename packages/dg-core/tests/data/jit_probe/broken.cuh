// Deliberately invalid: the JIT tests check that a compiler error becomes a readable exception.
#pragma once

namespace dg_test {

template <int N>
__global__ void broken_impl(float* out) {
    out[0] = this_identifier_does_not_exist + N
}

}  // namespace dg_test
