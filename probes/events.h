// events.bin: the probe events of one case, as the ring buffer delivered them, plus what was attached
// how and what was dropped. Format (little endian, documented in results/README.md "events.bin"):
//   "FSREVTS\0" | u32 version | u32 header_len | header JSON (kernel release, clock, record_size,
//                                                  probes: name, family, attach or reason, required)
//   chunks:  u32 'EVCH' | u32 count | count x struct fsr_event (record_size bytes each)
//   trailer: u32 'EVTR' | u32 len | JSON (per-probe hits / emitted / dropped, drops_total, inodes)
// A file without a trailer is truncated (the run was killed): the decoder says so.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "probes/fsrace_events.h"

namespace fsrace::probes {

inline constexpr char kEventsMagic[8] = {'F', 'S', 'R', 'E', 'V', 'T', 'S', '\0'};
inline constexpr uint32_t kEventsVersion = 1;
inline constexpr uint32_t kChunkTag = 0x48435645;    // "EVCH"
inline constexpr uint32_t kTrailerTag = 0x52545645;  // "EVTR"
inline constexpr uint32_t kMaxHeaderLen = 1 << 20;
static_assert(sizeof(fsr_event) == 112, "fsr_event layout changed: bump FSR_EVENT_VERSION and kEventsVersion");

struct EventsData {
  nlohmann::json header;
  nlohmann::json trailer;  // null if the file has none
  std::vector<fsr_event> events;
};

// Serialisation pieces (the writer in loader.cpp and the fixtures tool use them).
std::string encode_events_header(const nlohmann::json& header);
std::string encode_events_chunk(const fsr_event* ev, size_t n);
std::string encode_events_trailer(const nlohmann::json& trailer);

// Parses an events.bin image. Malformed input throws std::runtime_error naming `what`, the byte
// offset and the problem; never reads out of bounds (fuzzed: tests/fuzz/events_fuzz.cpp).
EventsData decode_events(const std::string& bytes, const std::string& what);
EventsData load_events(const std::string& path);

const char* event_kind_name(uint16_t kind);
// dev_t from stat(2) (glibc encoding) to the kernel's MKDEV encoding used in events.
uint32_t kernel_dev(uint64_t st_dev);
// One line: "+12.345 ms pc-add idx 16 (1 page) by fsr-mmap1[1234] invalidate_lock: free".
std::string describe_event(const fsr_event& e, uint64_t t0_ns = 0);
// invalidate_lock state in words: "free", "held exclusive by this task", "held shared (2 readers)" ...
std::string lock_state(const fsr_event& e);
// The probe's name (catalog) for the event's probe id.
std::string probe_name(uint16_t probe);

}  // namespace fsrace::probes
