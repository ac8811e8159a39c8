// Transitive include scan for the cache key: every header that resolves inside one of the include dirs is hashed
// (content), recursively. Headers from CUTLASS are covered by the pinned package version instead, and toolkit
// headers by the compiler identity.
#pragma once

#include <sys/stat.h>

#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <cstring>

#include <fmt/format.h>

#include "sha256.hpp"

namespace dg::jit {

inline bool read_file(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::stringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return static_cast<bool>(in) || in.eof();
}

inline bool file_exists(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Every `#include "x"` / `#include <x>` target named in a source text.
inline std::vector<std::string> parse_includes(const std::string& text) {
    std::vector<std::string> out;
    size_t pos = 0;
    while ((pos = text.find("#include", pos)) != std::string::npos) {
        size_t line_start = text.rfind('\n', pos);
        line_start = (line_start == std::string::npos) ? 0 : line_start + 1;
        bool only_space = true;
        for (size_t i = line_start; i < pos; ++i) only_space &= (text[i] == ' ' || text[i] == '\t');
        size_t p = pos + 8;
        pos = p;
        if (!only_space) continue;
        while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) ++p;
        if (p >= text.size() || (text[p] != '"' && text[p] != '<')) continue;
        const char close = text[p] == '"' ? '"' : '>';
        size_t end = text.find(close, p + 1);
        if (end == std::string::npos || text.find('\n', p) < end) continue;
        out.push_back(text.substr(p + 1, end - p - 1));
    }
    return out;
}

// 128-bit content fingerprint of a header (two independent 64-bit multiply-xorshift lanes over 8-byte words):
// several times faster than SHA-256, which matters because every header of a kernel is hashed on the first cache
// lookup of a process. The cache key itself stays SHA-256 over these fingerprints.
inline std::string content_hash(const std::string& text) {
    uint64_t h1 = 0x9e3779b97f4a7c15ull ^ text.size(), h2 = 0xc2b2ae3d27d4eb4full + text.size();
    size_t i = 0;
    for (; i + 8 <= text.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, text.data() + i, 8);
        h1 = (h1 ^ w) * 0xff51afd7ed558ccdull;
        h1 ^= h1 >> 32;
        h2 = (h2 + w) * 0xc4ceb9fe1a85ec53ull;
        h2 ^= h2 >> 29;
    }
    for (; i < text.size(); ++i) {
        h1 = (h1 ^ static_cast<unsigned char>(text[i])) * 0x100000001b3ull;
        h2 = (h2 + static_cast<unsigned char>(text[i])) * 0x9e3779b97f4a7c15ull;
    }
    return fmt::format("{:016x}{:016x}", h1, h2);
}

struct HeaderHasher {
    struct Entry {
        int64_t mtime_ns = 0, size = 0;
        std::string hash;
        std::vector<std::string> includes;
    };
    std::mutex mutex;
    std::unordered_map<std::string, Entry> files;

    // Hash of one file, memoised on (mtime, size).
    const Entry* file(const std::string& path) {
        struct stat st{};
        if (::stat(path.c_str(), &st) != 0) return nullptr;
        const int64_t mtime = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        auto it = files.find(path);
        if (it != files.end() && it->second.mtime_ns == mtime && it->second.size == st.st_size) return &it->second;
        Entry e;
        std::string text;
        if (!read_file(path, text)) return nullptr;
        e.mtime_ns = mtime;
        e.size = st.st_size;
        e.hash = content_hash(text);
        e.includes = parse_includes(text);
        return &(files[path] = std::move(e));
    }

    // Adds (path, content hash) of every transitively included header under `dirs` to `h`.
    void hash_closure(const std::string& source, const std::vector<std::string>& dirs, Sha256& h) {
        std::lock_guard lock(mutex);
        std::set<std::string> seen;
        std::vector<std::pair<std::string, std::string>> stack;  // (include name, dir of includer)
        for (auto& inc : parse_includes(source)) stack.emplace_back(inc, "");
        while (!stack.empty()) {
            auto [name, here] = stack.back();
            stack.pop_back();
            std::string resolved;
            if (!here.empty() && file_exists(here + "/" + name)) resolved = here + "/" + name;
            for (size_t i = 0; resolved.empty() && i < dirs.size(); ++i)
                if (file_exists(dirs[i] + "/" + name)) resolved = dirs[i] + "/" + name;
            if (resolved.empty() || !seen.insert(resolved).second) continue;
            const Entry* e = file(resolved);
            if (e == nullptr) continue;
            h.field(name).field(e->hash);
            const std::string dir = resolved.substr(0, resolved.rfind('/'));
            for (const auto& inc : e->includes) stack.emplace_back(inc, dir);
        }
    }
};

inline HeaderHasher& header_hasher() {
    static HeaderHasher h;
    return h;
}

}  // namespace dg::jit
