// libFuzzer target for the events.bin decoder (probes/events.cpp): any input either decodes or throws
// std::runtime_error; never crashes, never reads out of bounds (built with ASan + UBSan).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "probes/events.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string b(reinterpret_cast<const char*>(data), size);
  try {
    auto d = fsrace::probes::decode_events(b, "fuzz");
    for (const auto& e : d.events) (void)fsrace::probes::describe_event(e, 1);
  } catch (const std::runtime_error&) {
  }
  return 0;
}
