// emulated_kernels.cpp -- C entry points that run each dg.layout kernel under host_emulator.h (see there).
#include "host_emulator.h"
#include <dg_layout/impls/per_token_cast_fp8.cuh>
#include <dg_layout/impls/per_block_cast_fp8.cuh>
#include <dg_layout/impls/per_channel_cast_fp8.cuh>
#include <dg_layout/impls/sf_mn_major_fp32.cuh>
#include <dg_layout/impls/sf_pack_ue8m0.cuh>
#include <dg_layout/impls/sf_pack_ue8m0_broadcast.cuh>
#include <dg_layout/impls/sf_pack_ue8m0_k_grouped.cuh>
using namespace dg::layout;
using ll = long long;
extern "C" {
void per_token(int bf16, int grid, const void* x, unsigned char* out, float* sf, ll m, ll k, ll xs, ll os, ll sfm,
               ll sfs, unsigned ue, unsigned vec) {
    emu::launch(dim3(grid), dim3(256), [&] {
        if (bf16)
            per_token_cast_fp8_impl<__nv_bfloat16>((const __nv_bfloat16*)x, out, sf, m, k, xs, os, sfm, sfs, ue, vec);
        else
            per_token_cast_fp8_impl<float>((const float*)x, out, sf, m, k, xs, os, sfm, sfs, ue, vec);
    });
}
void tile_cast(int channel, int bf16, int grid, const void* x, unsigned char* out, float* sf, ll m, ll n, ll xs, ll os,
               unsigned ue, unsigned vec) {
    emu::launch(dim3(grid), dim3(256), [&] {
        if (channel) {
            if (bf16)
                per_channel_cast_fp8_impl<__nv_bfloat16>((const __nv_bfloat16*)x, out, sf, m, n, xs, os, ue, vec);
            else
                per_channel_cast_fp8_impl<float>((const float*)x, out, sf, m, n, xs, os, ue, vec);
        } else {
            if (bf16)
                per_block_cast_fp8_impl<__nv_bfloat16>((const __nv_bfloat16*)x, out, sf, m, n, xs, os, ue, vec);
            else
                per_block_cast_fp8_impl<float>((const float*)x, out, sf, m, n, xs, os, ue, vec);
        }
    });
}
void mn_major(int gx, const float* in, float* out, ll g, ll mn, ll s, ll sg, ll smn, ll ss, ll tma) {
    emu::launch(dim3(gx), dim3(kSfThreads), [&] { sf_mn_major_fp32_impl(in, out, g, mn, s, sg, smn, ss, tma); });
}
void pack(int gx, const float* in, int* out, ll g, ll mn, ll s, ll sg, ll smn, ll ss, ll rd, ll tma) {
    emu::launch(dim3(gx), dim3(kSfThreads), [&] { sf_pack_ue8m0_impl(in, out, g, mn, s, sg, smn, ss, rd, tma); });
}
void pack_bcast(int gx, const float* in, int* out, ll g, ll mn, ll s, ll sg, ll smn, ll ss, ll rd, ll tma,
                unsigned narrow) {
    emu::launch(dim3(gx), dim3(kBroadcastThreads),
                [&] { sf_pack_ue8m0_broadcast_impl(in, out, g, mn, s, sg, smn, ss, rd, tma, narrow); });
}
void pack_kg(int gx, int gy, int gz, const float* sf, int* out, const int* ks, ll g, ll mn, ll rin, ll rout,
             unsigned vec) {
    emu::launch(dim3(gx, gy, gz), dim3(kPackThreads),
                [&] { sf_pack_ue8m0_k_grouped_impl(sf, out, ks, g, mn, rin, rout, vec); });
}
}
