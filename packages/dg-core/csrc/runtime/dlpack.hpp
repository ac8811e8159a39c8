// The parts of the DLPack ABI (v1.x) that dg.core reads: DLTensor and the C exchange API that frameworks publish as
// `type(t).__dlpack_c_exchange_api__` (a capsule named "dlpack_exchange_api"). Through it a tensor's data pointer,
// shape, strides, dtype and device, and the framework's current stream, are read in tens of nanoseconds, without a
// Python call and without linking the framework. The layouts below follow the DLPack specification.
#pragma once

#include <cstdint>

namespace dg::dlpack {

enum DeviceType : int32_t { kCPU = 1, kCUDA = 2, kCUDAHost = 3, kCUDAManaged = 13 };
enum TypeCode : uint8_t { kInt = 0, kUInt = 1, kFloat = 2, kBfloat = 4, kBool = 6, kFloat8_e4m3fn = 10 };

struct Device {
    int32_t device_type;
    int32_t device_id;
};

struct DataType {
    uint8_t code;
    uint8_t bits;
    uint16_t lanes;
};

struct Tensor {
    void* data;
    Device device;
    int32_t ndim;
    DataType dtype;
    int64_t* shape;
    int64_t* strides;
    uint64_t byte_offset;
};

struct Version {
    uint32_t major;
    uint32_t minor;
};

struct ExchangeApiHeader {
    Version version;
    ExchangeApiHeader* prev_api;
};

struct ExchangeApi {
    ExchangeApiHeader header;
    void* managed_tensor_allocator;
    void* managed_tensor_from_py_object_no_sync;
    void* managed_tensor_to_py_object_no_sync;
    int (*dltensor_from_py_object_no_sync)(void* py_object, Tensor* out);
    int (*current_work_stream)(int32_t device_type, int32_t device_id, void** out_stream);
};

}  // namespace dg::dlpack
