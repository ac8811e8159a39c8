// Scratch memory of the split-K fix-up, one buffer per (device, stream): INT32 counters that are zero whenever no
// launch is in flight on that stream (every launch leaves them zero again) and FP32 slots for partial tiles.
// NOTE: a stream destroyed with launches still queued may hand its handle to a new stream, whose launches must not
// run beside them on the same counters: each buffer remembers the driver's id of the stream it serves (unique in
// the context), and a handle that comes back with another id first waits for the device to finish (rare; the buffer
// is then reused, so streams that come and go do not pile up buffers).
//
// Launches on one stream never overlap, so they can share a buffer; launches on different streams may, so each
// stream gets its own. The buffer comes from the driver's stream-ordered allocator: it grows by allocating a larger
// one on the stream and freeing the old one behind the launches already queued there, and its counters are zeroed
// by a memset on the stream. The buffers live until release_split_workspaces() (dg.core.release_workspaces). NOTE: a
// stream being captured into a CUDA graph gets no buffer (the caller then runs without split-K): a graph would keep
// the pointer after the buffer grew and was freed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "device.hpp"
#include "driver.hpp"

namespace dg {

struct SplitWorkspace {
    unsigned int* counters = nullptr;
    float* partials = nullptr;
};

// True when `stream` is being captured into a CUDA graph.
inline bool stream_capturing(CUstream stream) {
    CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
    DG_CU_CHECK(DG_CU(cuStreamIsCapturing)(stream, &status));
    return status != CU_STREAM_CAPTURE_STATUS_NONE;
}

namespace detail {

inline constexpr size_t kWorkspaceAlign = 256;

// A buffer: counter_bytes() of counters, then the partial slots.
struct WorkspaceBuffer {
    CUdeviceptr base = 0;
    size_t counter_words = 0, partial_bytes = 0;
    unsigned long long stream_id = 0;  // cuStreamGetId of the stream the buffer serves
    size_t counter_bytes() const {
        return (counter_words * 4 + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
    }
};

struct WorkspaceRegistry {
    std::mutex mutex;
    std::map<std::pair<int, CUstream>, WorkspaceBuffer> buffers;
};

inline WorkspaceRegistry& workspace_registry() {
    static WorkspaceRegistry registry;
    return registry;
}

}  // namespace detail

// The buffer of (device `ordinal`, `stream`) with at least `counter_words` counters and `partial_bytes` of partial
// slots, or nulls when the driver cannot provide one (out of memory, or no stream-ordered allocator, e.g. on some
// virtualised GPUs): the caller then runs without split-K. The current context must be the device's. Not for a
// capturing stream.
inline SplitWorkspace split_workspace(int ordinal, CUstream stream, size_t counter_words, size_t partial_bytes) {
    constexpr size_t kAlign = detail::kWorkspaceAlign;
    unsigned long long stream_id = 0;
    if (DG_CU(cuStreamGetId)(stream, &stream_id) != CUDA_SUCCESS) return SplitWorkspace{};
    detail::WorkspaceRegistry& registry = detail::workspace_registry();
    std::lock_guard lock(registry.mutex);
    detail::WorkspaceBuffer& buf = registry.buffers[{ordinal, stream}];
    if (buf.base != 0 && buf.stream_id != stream_id) {
        // The handle now names another stream: the old one's launches may still use the counters.
        if (DG_CU(cuCtxSynchronize)() != CUDA_SUCCESS) return SplitWorkspace{};
    }
    buf.stream_id = stream_id;
    if (buf.base == 0 || buf.counter_words < counter_words || buf.partial_bytes < partial_bytes) {
        detail::WorkspaceBuffer grown;
        grown.stream_id = stream_id;
        grown.counter_words = std::max(buf.counter_words, (counter_words + 63) / 64 * 64);
        grown.partial_bytes = std::max(buf.partial_bytes, (partial_bytes + kAlign - 1) / kAlign * kAlign);
        if (DG_CU(cuMemAllocAsync)(&grown.base, grown.counter_bytes() + grown.partial_bytes, stream) != CUDA_SUCCESS)
            return SplitWorkspace{};  // NOTE: the old buffer (if any) stays; this launch runs without it
        DG_CU_CHECK(DG_CU(cuMemsetD32Async)(grown.base, 0, grown.counter_words, stream));
        // NOTE: freed in stream order, after the launches that still use it.
        if (buf.base != 0) DG_CU_CHECK(DG_CU(cuMemFreeAsync)(buf.base, stream));
        buf = grown;
    }
    return SplitWorkspace{reinterpret_cast<unsigned int*>(buf.base),
                          reinterpret_cast<float*>(buf.base + buf.counter_bytes())};
}

// Frees every stream's buffer and returns the bytes released (0, with no CUDA call, when there is none). Each device
// that holds one is synchronised first, so no launch still uses a buffer when it goes (its stream may be gone since).
// A later launch with a tail allocates a new one.
inline size_t release_split_workspaces() {
    detail::WorkspaceRegistry& registry = detail::workspace_registry();
    std::lock_guard lock(registry.mutex);
    size_t released = 0;
    for (auto it = registry.buffers.begin(); it != registry.buffers.end(); it = registry.buffers.erase(it)) {
        const detail::WorkspaceBuffer& buf = it->second;
        if (buf.base == 0) continue;
        ContextGuard guard(it->first.first);
        DG_CU_CHECK(DG_CU(cuCtxSynchronize)());
        DG_CU_CHECK(DG_CU(cuMemFreeAsync)(buf.base, nullptr));
        released += buf.counter_bytes() + buf.partial_bytes;
    }
    return released;
}

}  // namespace dg
