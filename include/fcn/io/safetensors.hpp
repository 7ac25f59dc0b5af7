#pragma once
// safetensors files: 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
// {string: string}}, then the raw little-endian data.
//
// Reading accepts F32, F64, F16-free integer types (I64, I32, U8) and converts
// them to float32; every malformed file is an Error naming the file.
// Writing is atomic: NAME.tmp is written, fsynced, then renamed over NAME, so
// a crash or a full disk never leaves a truncated file behind.
#include <map>
#include <string>
#include <vector>

#include "fcn/core/tensor.hpp"

namespace fcn {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

SafetensorsFile read_safetensors(const std::string& filename);
// Parses an in-memory file (fuzz tests); `source` names it in errors.
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source);
void write_safetensors(const std::string& filename, const std::map<std::string, const Tensor*>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
void write_safetensors(const std::string& filename, const SafetensorsFile& file);

// Writes `bytes` to `filename` atomically (temp file, fsync, rename, fsync of
// the directory). Throws an Error naming the file on any failure, leaving
// the previous file untouched.
void write_file_atomic(const std::string& filename, const std::string& bytes);
// The same for a file made of several buffers, written in order.
struct ByteSpan {
  const char* data;
  size_t size;
};
void write_file_atomic(const std::string& filename, const std::vector<ByteSpan>& parts);

}  // namespace fcn
