#include "core/util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fmt/core.h>

namespace fsrace {

void write_file_atomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  // Never through a link planted in a shared results directory: the temp file is created fresh (a stale
  // one of this pid, or a link by that name, is removed first) and the rename replaces `path` itself.
  unlink(tmp.c_str());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) throw Fatal(fmt::format("cannot write {}: {}", tmp, strerror(errno)));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      unlink(tmp.c_str());
      throw Fatal(fmt::format("cannot write {}: {}", tmp, strerror(e)));
    }
    off += size_t(n);
  }
  if (fsync(fd) != 0 && errno != EINVAL) {  // ENOSPC / EIO may only show here
    int e = errno;
    close(fd);
    unlink(tmp.c_str());
    throw Fatal(fmt::format("cannot write {}: {}", tmp, strerror(e)));
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    throw Fatal(fmt::format("cannot rename {} to {}: {}", tmp, path, strerror(e)));
  }
}

std::string read_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Fatal(fmt::format("cannot read {}: {}", path, strerror(errno)));
  std::string out;
  struct stat st {};
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) out.reserve(size_t(st.st_size));  // one allocation
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      throw Fatal(fmt::format("cannot read {}: {}", path, strerror(e)));
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  close(fd);
  return out;
}

void make_dirs(const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
      int e = errno;
      throw Fatal(fmt::format("cannot create directory {}: {}{}", cur, strerror(e),
                              e == ENOTDIR ? " (a file is in the way: pass a directory)" : ""));
    }
  }
}

bool path_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string timestamp_id() {
  time_t t = time(nullptr);
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

std::string kernel_release() {
  struct utsname u;
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

}  // namespace fsrace
