// Python object -> dg::TensorView, and the framework's current stream.
//
// Fast path: the DLPack C exchange API of the tensor's type (torch >= 2.10 publishes one), which fills a DLTensor
// without any Python call. Fallback: nanobind's ndarray caster (the `__dlpack__` protocol, a few microseconds).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <mutex>
#include <unordered_map>

#include <cuda.h>

#include "../runtime/dlpack.hpp"
#include "../runtime/error.hpp"
#include "../runtime/tensor.hpp"

namespace dg::bind {

namespace nb = nanobind;

// The exchange API of a Python type, or nullptr; looked up once per type.
inline const dlpack::ExchangeApi* exchange_api(PyTypeObject* type) {
    static std::unordered_map<PyTypeObject*, const dlpack::ExchangeApi*> cache;  // guarded by the GIL
    auto it = cache.find(type);
    if (it != cache.end()) [[likely]]
        return it->second;
    const dlpack::ExchangeApi* api = nullptr;
    PyObject* cap = PyObject_GetAttrString(reinterpret_cast<PyObject*>(type), "__dlpack_c_exchange_api__");
    if (cap != nullptr) {
        if (PyCapsule_IsValid(cap, "dlpack_exchange_api")) {
            auto* a = static_cast<const dlpack::ExchangeApi*>(PyCapsule_GetPointer(cap, "dlpack_exchange_api"));
            if (a != nullptr && a->header.version.major == 1) api = a;
        }
        Py_DECREF(cap);
    } else {
        PyErr_Clear();
    }
    cache.emplace(type, api);
    return api;
}

inline DType to_dtype(dlpack::DataType t) {
    if (t.lanes != 1) return DType::Other;
    switch (t.code) {
        case dlpack::kFloat8_e4m3fn:
            return t.bits == 8 ? DType::F8E4M3 : DType::Other;
        case dlpack::kBfloat:
            return t.bits == 16 ? DType::BF16 : DType::Other;
        case dlpack::kFloat:
            return t.bits == 32 ? DType::F32 : (t.bits == 16 ? DType::F16 : DType::Other);
        case dlpack::kInt:
            return t.bits == 32 ? DType::I32 : (t.bits == 64 ? DType::I64 : DType::Other);
        case dlpack::kUInt:
            return t.bits == 8 ? DType::U8 : DType::Other;
        default:
            return DType::Other;
    }
}

inline void fill_view(TensorView& v, const dlpack::Tensor& t, const char* arg) {
    DG_CHECK_VALUE(t.ndim <= 4, "argument '{}' has {} dimensions; dg supports at most 4", arg, t.ndim);
    v.data = static_cast<char*>(t.data) + t.byte_offset;
    v.dtype = to_dtype(t.dtype);
    v.ndim = t.ndim;
    int64_t expected = 1;
    for (int i = t.ndim - 1; i >= 0; --i) {
        v.shape[i] = t.shape[i];
        v.strides[i] = t.strides != nullptr ? t.strides[i] : expected;
        expected *= t.shape[i];
    }
    v.device = (t.device.device_type == dlpack::kCUDA || t.device.device_type == dlpack::kCUDAManaged)
                   ? t.device.device_id
                   : -1;
}

// Reads a tensor argument. `arg` names it in error messages.
inline TensorView tensor_arg(nb::handle obj, const char* arg) {
    TensorView v;
    if (const dlpack::ExchangeApi* api = exchange_api(Py_TYPE(obj.ptr()))) [[likely]] {
        dlpack::Tensor t{};
        if (api->dltensor_from_py_object_no_sync(obj.ptr(), &t) != 0) {
            PyErr_Clear();
            throw TypeError(fmt::format("argument '{}' could not be read as a DLPack tensor", arg));
        }
        fill_view(v, t, arg);
        return v;
    }
    nb::ndarray<> arr;
    try {
        arr = nb::cast<nb::ndarray<>>(obj);
    } catch (const nb::cast_error&) {
        throw TypeError(fmt::format("argument '{}' must be a tensor (torch.Tensor or any DLPack array), got {}", arg,
                                    nb::type_name(obj.type()).c_str()));
    }
    dlpack::Tensor t{};
    t.data = arr.data();
    t.device.device_type = arr.device_type() == nb::device::cuda::value ? dlpack::kCUDA : dlpack::kCPU;
    t.device.device_id = arr.device_id();
    t.ndim = static_cast<int32_t>(arr.ndim());
    t.dtype = {arr.dtype().code, arr.dtype().bits, arr.dtype().lanes};
    int64_t shape[8], strides[8];
    DG_CHECK_VALUE(arr.ndim() <= 4, "argument '{}' has {} dimensions; dg supports at most 4", arg, arr.ndim());
    for (size_t i = 0; i < arr.ndim(); ++i) {
        shape[i] = arr.shape(i);
        strides[i] = arr.stride(i);
    }
    t.shape = shape;
    t.strides = strides;
    fill_view(v, t, arg);
    return v;
}

// The current stream of the framework that owns `obj` (torch: torch.cuda.current_stream(device)).
inline CUstream current_stream(nb::handle obj, int device) {
    if (const dlpack::ExchangeApi* api = exchange_api(Py_TYPE(obj.ptr()))) [[likely]] {
        if (api->current_work_stream != nullptr) {
            void* s = nullptr;
            if (api->current_work_stream(dlpack::kCUDA, device, &s) == 0) return static_cast<CUstream>(s);
            PyErr_Clear();
        }
    }
    nb::object torch = nb::module_::import_("torch");
    nb::object stream = torch.attr("cuda").attr("current_stream")(device);
    return reinterpret_cast<CUstream>(nb::cast<uintptr_t>(stream.attr("cuda_stream")));
}

}  // namespace dg::bind
