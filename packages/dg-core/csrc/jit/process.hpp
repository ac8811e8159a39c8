// Runs a child process and captures its combined output (for NVCC). posix_spawn: no shell, no quoting issues.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace dg::jit {

struct ProcessResult {
    int exit_code = -1;
    std::string output;
    std::string spawn_error;  // non-empty if the program could not be started
};

inline ProcessResult run_process(const std::vector<std::string>& argv, const std::string& output_file) {
    ProcessResult result;
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        result.spawn_error = fmt::format("cannot run '{}': {}", argv[0], std::strerror(rc));
        return result;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::ifstream in(output_file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    result.output = ss.str();
    ::unlink(output_file.c_str());
    return result;
}

}  // namespace dg::jit
