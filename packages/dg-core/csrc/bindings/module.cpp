// dg.core._C: the nanobind module. Only bindings live here; the logic is in runtime/, jit/, apis/ and kernels/.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <new>

#include "../apis/api.hpp"
#include "../jit/kernel.hpp"
#include "../runtime/device.hpp"
#include "../runtime/tma.hpp"
#include "../runtime/workspace.hpp"
#include "tensor_arg.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

// A TMA descriptor passed by value to kernels ("tmap" in a kernel signature).
struct TensorMap {
    alignas(64) CUtensorMap map;
};

CUtensorMapDataType tma_dtype(const std::string& name) {
    if (name == "uint8" || name == "float8_e4m3fn" || name == "int8") return CU_TENSOR_MAP_DATA_TYPE_UINT8;
    if (name == "bfloat16") return CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    if (name == "float16") return CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
    if (name == "float32") return CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
    if (name == "int32") return CU_TENSOR_MAP_DATA_TYPE_INT32;
    if (name == "uint32") return CU_TENSOR_MAP_DATA_TYPE_UINT32;
    if (name == "int64") return CU_TENSOR_MAP_DATA_TYPE_INT64;
    throw dg::ValueError(fmt::format("unsupported TMA dtype '{}'", name));
}

// Launches `kernel` with `args` typed by `signature` (one code per parameter: p=pointer, i=int32, I=uint32,
// l=int64, L=uint64, f=float32, t=TensorMap).
void launch_kernel(dg::Kernel& kernel, const std::string& signature, nb::tuple args, std::tuple<int, int, int> grid,
                   std::tuple<int, int, int> block, uint32_t smem, uintptr_t stream, std::tuple<int, int, int> cluster,
                   bool pdl, int device) {
    DG_CHECK_VALUE(signature.size() == args.size(), "kernel '{}' takes {} arguments, got {}", kernel.name(),
                   signature.size(), args.size());
    union Slot {
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f32;
    };
    std::vector<Slot> slots(signature.size());
    std::vector<void*> params(signature.size());
    for (size_t i = 0; i < signature.size(); ++i) {
        nb::handle a = args[i];
        try {
            switch (signature[i]) {
                case 'p':
                    slots[i].u64 = nb::cast<uint64_t>(a);
                    params[i] = &slots[i];
                    break;
                case 'i':
                    slots[i].i32 = nb::cast<int32_t>(a);
                    params[i] = &slots[i];
                    break;
                case 'I':
                    slots[i].u32 = nb::cast<uint32_t>(a);
                    params[i] = &slots[i];
                    break;
                case 'l':
                    slots[i].i64 = nb::cast<int64_t>(a);
                    params[i] = &slots[i];
                    break;
                case 'L':
                    slots[i].u64 = nb::cast<uint64_t>(a);
                    params[i] = &slots[i];
                    break;
                case 'f':
                    slots[i].f32 = nb::cast<float>(a);
                    params[i] = &slots[i];
                    break;
                case 't':
                    params[i] = &nb::cast<TensorMap&>(a).map;
                    break;
                default:
                    throw dg::ValueError(fmt::format("unknown signature code '{}'", signature[i]));
            }
        } catch (const nb::cast_error&) {
            throw dg::TypeError(fmt::format("kernel '{}': argument {} ({}) does not fit signature code '{}'",
                                            kernel.name(), i, nb::type_name(a.type()).c_str(), signature[i]));
        }
    }
    dg::ContextGuard context(device);
    dg::LaunchConfig cfg;
    cfg.grid = {static_cast<uint32_t>(std::get<0>(grid)), static_cast<uint32_t>(std::get<1>(grid)),
                static_cast<uint32_t>(std::get<2>(grid))};
    cfg.block = {static_cast<uint32_t>(std::get<0>(block)), static_cast<uint32_t>(std::get<1>(block)),
                 static_cast<uint32_t>(std::get<2>(block))};
    cfg.smem = smem;
    cfg.stream = reinterpret_cast<CUstream>(stream);
    cfg.cluster_x = std::get<0>(cluster);
    cfg.cluster_y = std::get<1>(cluster);
    cfg.cluster_z = std::get<2>(cluster);
    cfg.pdl = pdl;
    kernel.launch(device, cfg, params.data());
}

}  // namespace

NB_MODULE(_C, m) {
    m.doc() = "dg.core native module: JIT runtime, launch path, TMA descriptors and GEMM entry points";

    static nb::object cuda_error = nb::exception<dg::CudaError>(m, "CudaError", PyExc_RuntimeError);
    static nb::object compile_error = nb::exception<dg::CompileError>(m, "CompileError", PyExc_RuntimeError);
    nb::register_exception_translator([](const std::exception_ptr& p, void*) {
        try {
            std::rethrow_exception(p);
        } catch (const dg::TypeError& e) {
            PyErr_SetString(PyExc_TypeError, e.what());
        } catch (const dg::ValueError& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });

    m.def(
        "init",
        [](std::string core_include, std::string cutlass_include, std::string cutlass_version, std::string cuda_home,
           std::string nvrtc_library, std::string default_cache_dir) {
            auto& p = dg::jit::paths();
            p.core_include = std::move(core_include);
            p.cutlass_include = std::move(cutlass_include);
            p.cutlass_version = std::move(cutlass_version);
            p.cuda_home = std::move(cuda_home);
            p.nvrtc_library = std::move(nvrtc_library);
            p.default_cache_dir = std::move(default_cache_dir);
        },
        "core_include"_a, "cutlass_include"_a, "cutlass_version"_a, "cuda_home"_a, "nvrtc_library"_a,
        "default_cache_dir"_a, "Records paths for the JIT. Makes no CUDA call.");

    // Runtime configuration (positional-only, as in the peer's interface).
    m.def("set_num_sms", &dg::set_num_sms, nb::arg("n"), nb::sig("def set_num_sms(n: int, /) -> None"),
          "Limit the SMs dg's kernels use (0 = all of the current device's).");
    m.def(
        "get_num_sms", []() { return dg::num_sms(); }, nb::sig("def get_num_sms() -> int"),
        "SMs dg's kernels use: the value of set_num_sms, or the current device's SM count.");
    m.def("set_tc_util", &dg::set_tc_util, nb::arg("p"), nb::sig("def set_tc_util(p: int, /) -> None"),
          "Tensor-core utilisation target in percent (0 = unset, meaning 100).");
    m.def("get_tc_util", &dg::get_tc_util, nb::sig("def get_tc_util() -> int"), "Tensor-core utilisation target.");
    m.def(
        "release_workspaces",
        []() {
            nb::gil_scoped_release release;
            return dg::release_split_workspaces();
        },
        nb::sig("def release_workspaces() -> int"),
        "Free the split-K workspaces dg keeps per (device, stream) for the GEMMs' split tail, after synchronising each "
        "device that holds one; returns the bytes freed (0, with no CUDA call, when there are none). A later GEMM "
        "with a split tail allocates a new one.");
    m.def(
        "stream_id",
        [](int ordinal, uint64_t stream) {
            dg::ContextGuard guard(ordinal);
            unsigned long long id = 0;
            DG_CU_CHECK(DG_CU(cuStreamGetId)(reinterpret_cast<CUstream>(stream), &id));
            return id;
        },
        "device"_a, "stream"_a,
        "The driver's id of stream handle `stream` on device `device` (cuStreamGetId): unique within the context, "
        "where a handle may come back for a new stream once its stream is destroyed.");
    m.def(
        "driver_available", []() { return dg::driver::try_api() != nullptr; },
        "True if the CUDA driver could be loaded (loads it; does not create a context).");
    m.def(
        "device_info",
        [](int ordinal) {
            const dg::DeviceProps& p = dg::device_props(ordinal);
            nb::dict d;
            d["ordinal"] = p.ordinal;
            d["name"] = p.name;
            d["major"] = p.major;
            d["minor"] = p.minor;
            d["arch"] = p.arch();
            d["sm_count"] = p.sm_count;
            d["smem_optin_per_block"] = p.smem_optin_per_block;
            d["l2_bytes"] = p.l2_bytes;
            int version = 0;
            DG_CU_CHECK(DG_CU(cuDriverGetVersion)(&version));
            d["driver_cuda_version"] = version;
            return d;
        },
        "ordinal"_a, "Properties of CUDA device `ordinal` (cached).");

    // Kernel-author API.
    nb::class_<TensorMap>(m, "TensorMap", "A TMA descriptor (CUtensorMap), passed to kernels by value.")
        .def("__repr__", [](const TensorMap&) { return std::string("<dg.core TensorMap>"); });
    m.def(
        "make_tensor_map",
        [](uint64_t ptr, const std::string& dtype, std::vector<uint64_t> dims, std::vector<uint64_t> strides_bytes,
           std::vector<uint32_t> box, int swizzle) {
            DG_CHECK_VALUE(dims.size() == box.size() && strides_bytes.size() + 1 == dims.size(),
                           "make_tensor_map: dims ({}), box ({}) and strides_bytes ({}) must have rank, rank and "
                           "rank-1 entries",
                           dims.size(), box.size(), strides_bytes.size());
            TensorMap t;
            t.map =
                dg::make_tensor_map(reinterpret_cast<const void*>(ptr), tma_dtype(dtype), static_cast<int>(dims.size()),
                                    dims.data(), strides_bytes.data(), box.data(), swizzle);
            return t;
        },
        "ptr"_a, "dtype"_a, "dims"_a, "strides_bytes"_a, "box"_a, "swizzle"_a = 0);

    nb::class_<dg::Kernel>(m, "Kernel", "A JIT-compiled kernel (loaded into the driver on first launch).")
        .def_prop_ro("name", &dg::Kernel::name)
        .def_prop_ro("symbol", &dg::Kernel::symbol)
        .def_prop_ro("log", &dg::Kernel::log)
        .def_prop_ro("cache_path", &dg::Kernel::cache_path)
        .def_prop_ro("cubin", [](const dg::Kernel& k) { return nb::bytes(k.cubin().data(), k.cubin().size()); })
        .def("launch", &launch_kernel, "signature"_a, "args"_a, "grid"_a, "block"_a, "smem"_a, "stream"_a, "cluster"_a,
             "pdl"_a, "device"_a);
    m.def(
        "compile_kernel",
        [](std::string name, std::string include, std::string instance, std::vector<std::string> include_dirs,
           std::string arch) {
            dg::KernelSpec spec{std::move(name), std::move(include), std::move(instance), std::move(include_dirs),
                                std::move(arch)};
            nb::gil_scoped_release release;
            return dg::get_kernel(spec);
        },
        "name"_a, "include"_a, "instance"_a, "include_dirs"_a, "arch"_a);

    dg::api::register_all(m);
}
