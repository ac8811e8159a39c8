// Minimal reader for CUDA cubins (64-bit ELF, EM_CUDA): validates the container and finds the kernel entries.
//
// NOTE: a kernel entry owns a parameter constant bank, emitted as a section named ".nv.constant0.<symbol>";
// device functions do not. That gives the mangled name of the single kernel a JIT source instantiates without
// running cuobjdump (which a machine may not have) and without a GPU.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace dg::jit {

struct CubinInfo {
    bool valid = false;
    std::string error;
    std::vector<std::string> kernels;
};

inline CubinInfo inspect_cubin(std::string_view bytes) {
    CubinInfo info;
    auto fail = [&](const char* why) {
        info.error = why;
        return info;
    };
    auto read = [&](size_t off, auto& out) {
        if (off + sizeof(out) > bytes.size()) return false;
        std::memcpy(&out, bytes.data() + off, sizeof(out));
        return true;
    };
    if (bytes.size() < 64 || std::memcmp(bytes.data(),
                                         "\x7f"
                                         "ELF",
                                         4) != 0)
        return fail("not an ELF file");
    if (bytes[4] != 2) return fail("not a 64-bit ELF file");
    uint16_t machine = 0, shentsize = 0, shnum = 0, shstrndx = 0;
    uint64_t shoff = 0;
    read(18, machine);
    read(40, shoff);
    read(58, shentsize);
    read(60, shnum);
    read(62, shstrndx);
    if (machine != 190) return fail("not a CUDA ELF (e_machine != EM_CUDA)");
    if (shentsize != 64 || shnum == 0 || shstrndx >= shnum) return fail("bad section header table");
    if (shoff + uint64_t(shnum) * 64 > bytes.size()) return fail("truncated section header table");
    struct Section {
        uint32_t name;
        uint64_t offset, size;
        uint32_t type;
    };
    std::vector<Section> sections(shnum);
    for (uint16_t i = 0; i < shnum; ++i) {
        const size_t base = shoff + size_t(i) * 64;
        read(base + 0, sections[i].name);
        read(base + 4, sections[i].type);
        read(base + 24, sections[i].offset);
        read(base + 32, sections[i].size);
        // SHT_NOBITS (8) occupies no file space.
        if (sections[i].type != 8 && sections[i].offset + sections[i].size > bytes.size())
            return fail("truncated section data");
    }
    const Section& names = sections[shstrndx];
    constexpr std::string_view kPrefix = ".nv.constant0.";
    for (const Section& s : sections) {
        if (s.name >= names.size) return fail("bad section name offset");
        const char* p = bytes.data() + names.offset + s.name;
        const size_t max_len = names.size - s.name;
        std::string_view name(p, strnlen(p, max_len));
        if (name.substr(0, kPrefix.size()) == kPrefix) info.kernels.emplace_back(name.substr(kPrefix.size()));
    }
    info.valid = true;
    return info;
}

}  // namespace dg::jit
