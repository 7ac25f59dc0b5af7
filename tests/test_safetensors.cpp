#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "fcn/core/error.hpp"
#include "fcn/io/safetensors.hpp"

using namespace fcn;

namespace {

std::string temp_path(const std::string& name) { return "/tmp/fcn_test_st_" + std::to_string(getpid()) + "_" + name; }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Tensor ramp(const Shape& shape) {
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = 0.5f * static_cast<float>(i) - 3.f;
  return t;
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, shapes, values and metadata") {
  const std::string path = temp_path("roundtrip.safetensors");
  Tensor a = ramp({2, 3, 4, 5}), b = ramp({7}), scalar = ramp({});
  write_safetensors(path, {{"conv1.weight", &a}, {"conv1.bias", &b}, {"loss", &scalar}}, {{"iter", "42"}});
  const SafetensorsFile file = read_safetensors(path);
  REQUIRE(file.tensors.size() == 3);
  CHECK(file.metadata.at("iter") == "42");
  const Tensor& a2 = file.tensors.at("conv1.weight");
  REQUIRE(a2.shape() == a.shape());
  for (int64_t i = 0; i < a.numel(); ++i) CHECK(a2[i] == a[i]);
  CHECK(file.tensors.at("loss").shape().empty());
  CHECK(file.tensors.at("loss")[0] == scalar[0]);
  // data section starts 8-byte aligned
  const std::string bytes = read_bytes(path);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK((8 + header) % 8 == 0);
  std::remove(path.c_str());
}

TEST_CASE("safetensors reads files written by the numpy tool script with integer dtypes") {
  const SafetensorsFile file = read_safetensors(FCN_SOURCE_DIR "/tests/fixtures/safetensors_dtypes.safetensors");
  CHECK(file.metadata.at("note") == "dtypes");
  const Tensor& f64 = file.tensors.at("f64");
  const Tensor& i64 = file.tensors.at("i64");
  const Tensor& u8 = file.tensors.at("u8");
  REQUIRE(f64.shape() == Shape{2, 3});
  REQUIRE(i64.shape() == Shape{4});
  REQUIRE(u8.shape() == Shape{1, 1, 2, 2});
  for (int i = 0; i < 6; ++i) CHECK(f64[i] == Approx(0.25 * i - 1));
  CHECK(i64[0] == -2.f);
  CHECK(i64[3] == 255.f);
  CHECK(u8[0] == 0.f);
  CHECK(u8[3] == 255.f);
}

TEST_CASE("malformed safetensors files are errors that name the file") {
  Tensor a = ramp({3, 3});
  const std::string good_path = temp_path("good.safetensors");
  write_safetensors(good_path, {{"w", &a}});
  const std::string good = read_bytes(good_path);
  std::remove(good_path.c_str());

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", ""},
      {"short", good.substr(0, 5)},
      {"truncated data", good.substr(0, good.size() - 4)},
      {"header length too large", std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + good.substr(8)},
      {"header not json", std::string("\x04\x00\x00\x00\x00\x00\x00\x00", 8) + "{{{{"},
      {"header not an object", std::string("\x02\x00\x00\x00\x00\x00\x00\x00", 8) + "[]"},
  };
  for (const auto& c : cases) {
    INFO(c.first);
    try {
      parse_safetensors(c.second, "bad.safetensors");
      FAIL("no error for " + c.first);
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Catch::Contains("bad.safetensors"));
    }
  }
  auto with_header = [](const std::string& header, size_t data_bytes) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return bytes + header + std::string(data_bytes, '\0');
  };
  CHECK_THROWS_WITH(parse_safetensors(with_header(R"({"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", 2), "x"),
                    Catch::Contains("unsupported dtype F16"));
  CHECK_THROWS_WITH(parse_safetensors(with_header(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "x"),
                    Catch::Contains("needs 12"));
  CHECK_THROWS_WITH(parse_safetensors(with_header(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "x"),
                    Catch::Contains("non-integer dimension"));
  CHECK_THROWS_WITH(parse_safetensors(with_header(R"({"w":{"dtype":"F32","shape":[1]}})", 4), "x"),
                    Catch::Contains("lacks"));
  CHECK_THROWS_WITH(read_safetensors("/nonexistent/weights.safetensors"),
                    Catch::Contains("/nonexistent/weights.safetensors: cannot open"));
}

TEST_CASE("a failed write leaves the previous file intact") {
  const std::string dir = temp_path("readonly_dir");
  ::mkdir(dir.c_str(), 0755);
  const std::string path = dir + "/ckpt.safetensors";
  Tensor a = ramp({4});
  write_safetensors(path, {{"w", &a}});
  const std::string before = read_bytes(path);
  // /dev/full fails every write with ENOSPC: simulate a full disk by writing
  // the temp file there through a symlink.
  ::symlink("/dev/full", (path + ".tmp").c_str());
  Tensor big = ramp({1 << 16});
  CHECK_THROWS_WITH(write_safetensors(path, {{"w", &big}}), Catch::Contains("ckpt.safetensors"));
  CHECK(read_bytes(path) == before);
  ::unlink((path + ".tmp").c_str());
  std::remove(path.c_str());
  ::rmdir(dir.c_str());
}
