#include "fcn/io/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fcn/core/error.hpp"

namespace fcn {

using json = nlohmann::json;

namespace {

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "U8" || dtype == "I8" || dtype == "BOOL") return 1;
  return 0;
}

template <typename T>
void convert(const char* src, float* dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    T value;
    std::memcpy(&value, src + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(value);
  }
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
  auto fail = [&](const std::string& problem) -> void {
    throw Error(source + ": not a valid safetensors file (" + problem + ")");
  };
  if (bytes.size() < 8) fail("shorter than its 8-byte header length");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<unsigned char>(bytes[i]);
  if (header_size > bytes.size() - 8) fail("header length " + std::to_string(header_size) + " exceeds file size");
  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_size));
  } catch (const json::exception& e) {
    fail("header is not JSON");
  }
  if (!header.is_object()) fail("header is not a JSON object");
  const size_t data_begin = 8 + header_size;
  const size_t data_size = bytes.size() - data_begin;

  SafetensorsFile file;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();
    const json& entry = item.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("__metadata__ is not an object");
      for (const auto& m : entry.items()) {
        if (!m.value().is_string()) fail("__metadata__." + m.key() + " is not a string");
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets") || !entry["dtype"].is_string() || !entry["shape"].is_array() ||
        !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
      fail("tensor '" + name + "' lacks dtype, shape or data_offsets");
    const std::string dtype = entry["dtype"].get<std::string>();
    const size_t element_size = dtype_size(dtype);
    if (element_size == 0) fail("tensor '" + name + "' has unsupported dtype " + dtype);
    Shape shape;
    int64_t count = 1;
    for (const json& d : entry["shape"]) {
      if (!d.is_number_unsigned()) fail("tensor '" + name + "' has a non-integer dimension");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > (1ull << 40) || (dim > 0 && static_cast<uint64_t>(count) > (1ull << 40) / dim))
        fail("tensor '" + name + "' is impossibly large");
      count *= static_cast<int64_t>(dim);
      shape.push_back(static_cast<int64_t>(dim));
    }
    const json& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      fail("tensor '" + name + "' has invalid data_offsets");
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail("tensor '" + name + "' data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
           "] lie outside the " + std::to_string(data_size) + "-byte data (truncated file?)");
    if (end - begin != static_cast<uint64_t>(count) * element_size)
      fail("tensor '" + name + "' holds " + std::to_string(end - begin) + " bytes, but " + dtype + " " +
           shape_str(shape) + " needs " + std::to_string(count * element_size));
    Tensor tensor;
    tensor.reshape(shape);
    const char* src = bytes.data() + data_begin + begin;
    if (dtype == "F32") {
      if (count) std::memcpy(tensor.data(), src, count * sizeof(float));
    } else if (dtype == "F64") {
      convert<double>(src, tensor.data(), count);
    } else if (dtype == "I64") {
      convert<int64_t>(src, tensor.data(), count);
    } else if (dtype == "I32") {
      convert<int32_t>(src, tensor.data(), count);
    } else if (dtype == "I8") {
      convert<int8_t>(src, tensor.data(), count);
    } else {
      convert<uint8_t>(src, tensor.data(), count);
    }
    file.tensors.emplace(name, std::move(tensor));
  }
  return file;
}

SafetensorsFile read_safetensors(const std::string& filename) {
  std::ifstream in(filename, std::ios::binary | std::ios::ate);
  if (!in) throw Error(filename + ": cannot open file (" + errno_text() + ")");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(filename, ec))
    throw Error(filename + ": not a valid safetensors file (not a regular file)");
  // one buffer of the file's size: a stream buffer would grow by doubling
  // and then be copied, 4x a 500 MB weights file at the peak instead of 1x
  const std::streamsize size = in.tellg();
  if (size < 0) throw Error(filename + ": not a valid safetensors file (cannot read its size)");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (size > 0 && !in.read(bytes.data(), size)) throw Error(filename + ": read failed (" + errno_text() + ")");
  return parse_safetensors(bytes, filename);
}

void write_file_atomic(const std::string& filename, const std::string& bytes) {
  write_file_atomic(filename, std::vector<ByteSpan>{{bytes.data(), bytes.size()}});
}

void write_file_atomic(const std::string& filename, const std::vector<ByteSpan>& parts) {
  const std::string temp = filename + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(filename + ": cannot write (" + errno_text() + ")");
  for (const ByteSpan& part : parts) {
    size_t written = 0;
    while (written < part.size) {
      const ssize_t n = ::write(fd, part.data + written, part.size - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const std::string why = n < 0 ? errno_text() : "short write";
        ::close(fd);
        ::unlink(temp.c_str());
        throw Error(filename + ": write failed (" + why + "); the previous file is unchanged");
      }
      written += static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = errno_text();
    ::unlink(temp.c_str());
    throw Error(filename + ": write failed (" + why + "); the previous file is unchanged");
  }
  if (::rename(temp.c_str(), filename.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(temp.c_str());
    throw Error(filename + ": cannot rename temp file into place (" + why + ")");
  }
  // make the rename itself durable
  const auto slash = filename.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : filename.substr(0, slash == 0 ? 1 : slash);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

void write_safetensors(const std::string& filename, const std::map<std::string, const Tensor*>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& item : tensors) {
    const uint64_t size = sizeof(float) * static_cast<uint64_t>(item.second->numel());
    header[item.first] = {{"dtype", "F32"}, {"shape", item.second->shape()}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string header_text = header.dump();
  while ((8 + header_text.size()) % 8 != 0) header_text += ' ';  // align the data to 8 bytes
  std::string head(8, '\0');
  uint64_t header_size = header_text.size();
  for (int i = 0; i < 8; ++i) head[i] = static_cast<char>((header_size >> (8 * i)) & 0xff);
  head += header_text;
  // written from the tensors' own storage: no second copy of a large file in memory
  std::vector<ByteSpan> parts = {{head.data(), head.size()}};
  for (const auto& item : tensors)
    parts.push_back({reinterpret_cast<const char*>(item.second->data()), sizeof(float) * item.second->numel()});
  write_file_atomic(filename, parts);
}

void write_safetensors(const std::string& filename, const SafetensorsFile& file) {
  std::map<std::string, const Tensor*> tensors;
  for (const auto& item : file.tensors) tensors[item.first] = &item.second;
  write_safetensors(filename, tensors, file.metadata);
}

}  // namespace fcn
