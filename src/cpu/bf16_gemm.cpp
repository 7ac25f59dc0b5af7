#include "fcn/cpu/bf16_gemm.hpp"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <vector>

#include "fcn/core/aligned_memory.hpp"
#include "fcn/core/error.hpp"
#include "fcn/cpu/fp32_gemm.hpp"
#include "bf16_lanes.hpp"
#include "even_chunks.hpp"

namespace fcn::cpu {

namespace {

using dnnl::memory;

Bf16Support detect_bf16() {
  Bf16Support support;
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  support.kernel = onednn_isa_name();
  support.available = isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
  if (!support.available) {
    const char* limit = std::getenv("ONEDNN_MAX_CPU_ISA");
    support.missing = "this CPU has neither avx512_bf16 nor amx_bf16 (oneDNN runs " + support.kernel + ")";
    if (limit && *limit) support.missing += ", or ONEDNN_MAX_CPU_ISA=" + std::string(limit) + " hides them";
  }
  return support;
}

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A GEMM's shape as the primitive sees it: the bf16 operands' leading
// dimensions are those of the dense copies gemm_bf16 converts them into, of
// a RoundedOperand's copy, or the caller's (gemm_bf16_rounded).
struct Shape {
  bool trans_a, trans_b;
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  bool b_blocked = false;  // B in the pair-interleaved layout (vnni_offset); trans_b and ldb unused
  auto key() const { return std::tie(trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, b_blocked); }
  bool operator<(const Shape& o) const { return key() < o.key(); }
  bool operator==(const Shape& o) const { return key() == o.key(); }
};

struct Matmul {
  memory::desc a, b, c, scratch;
  dnnl::matmul primitive;
  bool reference = false;  // oneDNN's reference implementation (ref:any): no kernel for the shape
};

Matmul build(const Shape& s) {
  Matmul mm;
  // row-major [m, k] ("ab") or stored [k, m] and read transposed ("ba")
  mm.a = memory::desc({s.m, s.k}, memory::data_type::bf16, s.trans_a ? memory::dims{1, s.lda} : memory::dims{s.lda, 1});
  mm.b = s.b_blocked ? memory::desc({s.k, s.n}, memory::data_type::bf16, memory::format_tag::BA16a64b2a)
                     : memory::desc({s.k, s.n}, memory::data_type::bf16,
                                    s.trans_b ? memory::dims{1, s.ldb} : memory::dims{s.ldb, 1});
  mm.c = memory::desc({s.m, s.n}, memory::data_type::f32, memory::dims{s.ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (s.alpha != 1.f) attr.set_output_scales(0, {s.alpha});
  if (s.beta != 0.f) {
    dnnl::post_ops ops;
    ops.append_sum(s.beta);  // C = alpha * A B + beta * C
    attr.set_post_ops(ops);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(mm.a, mm.b, mm.c), attr, cpu_engine());
  mm.primitive = dnnl::matmul(pd);
  mm.scratch = pd.scratchpad_desc();
  mm.reference = std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
  return mm;
}

// The `capacity` most recently used values by key, the least recently used
// dropped first.
template <typename Key, typename Value>
class RecentlyUsed {
 public:
  explicit RecentlyUsed(size_t capacity) : capacity_(capacity) {}

  Value* find(const Key& key) {
    // most calls repeat the last shape (a pass runs one GEMM shape per point)
    if (!recent_.empty() && recent_.front().first == key) return &recent_.front().second;
    auto found = index_.find(key);
    if (found == index_.end()) return nullptr;
    recent_.splice(recent_.begin(), recent_, found->second);
    return &found->second->second;
  }

  Value& insert(const Key& key, Value value) {
    recent_.emplace_front(key, std::move(value));
    index_[key] = recent_.begin();
    if (recent_.size() > capacity_) {
      index_.erase(recent_.back().first);
      recent_.pop_back();
    }
    return recent_.front().second;
  }

 private:
  size_t capacity_;
  std::list<std::pair<Key, Value>> recent_;  // most recent first
  std::map<Key, typename std::list<std::pair<Key, Value>>::iterator> index_;
};

// At most this many primitives are kept: training on images of many sizes
// (VOC's) meets new GEMM shapes for a long time, and each primitive holds
// its own generated code.
constexpr size_t kMaxCachedPrimitives = 1024;

std::shared_ptr<const Matmul> matmul_for(const Shape& shape) {
  static std::mutex mutex;
  static RecentlyUsed<Shape, std::shared_ptr<const Matmul>> cache(kMaxCachedPrimitives);
  const std::lock_guard<std::mutex> lock(mutex);
  if (std::shared_ptr<const Matmul>* found = cache.find(shape)) return *found;
  // a caller still running a dropped primitive holds its own reference
  return cache.insert(shape, std::make_shared<const Matmul>(build(shape)));
}

// A primitive as one thread runs it: its operands' memory objects made once,
// their data handles set on each call. Making the four objects and the
// argument map anew cost ~1.3 us a call (oneDNN 2.6, Zen 5), a fifth of a
// 64 x 256 x 64 GEMM of Winograd's conv1_2 blocks, which a step calls
// thousands of times; the shared cache's lock is also taken only on a miss.
struct BoundMatmul {
  std::shared_ptr<const Matmul> matmul;
  memory a, b, c, scratch;
};

// Fewer than the shared cache: a thread cycles through a few shapes a layer.
constexpr size_t kMaxBoundPerThread = 64;

BoundMatmul& bound_matmul_for(const Shape& shape) {
  thread_local RecentlyUsed<Shape, BoundMatmul> bound(kMaxBoundPerThread);
  if (BoundMatmul* found = bound.find(shape)) return *found;
  const dnnl::engine& engine = cpu_engine();
  BoundMatmul made;
  made.matmul = matmul_for(shape);
  made.a = memory(made.matmul->a, engine, DNNL_MEMORY_NONE);
  made.b = memory(made.matmul->b, engine, DNNL_MEMORY_NONE);
  made.c = memory(made.matmul->c, engine, DNNL_MEMORY_NONE);
  made.scratch = memory(made.matmul->scratch, engine, DNNL_MEMORY_NONE);
  return bound.insert(shape, std::move(made));
}

// Per-thread buffers: the two converted operands and oneDNN's scratchpad.
struct ThreadBuffers {
  GrowingBuffer a, b, scratch;
};
ThreadBuffers& thread_buffers() {
  thread_local ThreadBuffers buffers;
  return buffers;
}

// rows x cols of a row-major matrix with leading dimension ld into a dense
// bf16 copy; on the team when called outside a parallel region (fc6's
// 25088 x 256 columns took ~3 ms a forward on one thread while the other
// waited)
uint16_t* convert_rows(const float* in, int64_t rows, int64_t cols, int64_t ld, GrowingBuffer& buffer) {
  uint16_t* out = buffer.get<uint16_t>(static_cast<size_t>(rows * cols));
  if (ld == cols) {
    round_to_bf16_parallel(in, out, rows * cols);
    return out;
  }
#pragma omp parallel for schedule(static) if (rows * cols >= (int64_t{1} << 17) && !omp_in_parallel())
  for (int64_t r = 0; r < rows; ++r) round_to_bf16(in + r * ld, out + r * cols, cols);
  return out;
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
void round_to_bf16_avx512(const float* in, uint16_t* out, int64_t count) {
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m256bh packed = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), reinterpret_cast<const __m256i&>(packed));
  }
  if (i < count) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (count - i)) - 1);
    const __m256bh packed = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail, in + i));
    _mm256_mask_storeu_epi16(out + i, tail, reinterpret_cast<const __m256i&>(packed));
  }
}

// round_to_bf16_avx512 with non-temporal stores of whole cache lines (32
// values) where `out` is 64-byte aligned; the rest as round_to_bf16_avx512.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
void stream_to_bf16_avx512(const float* in, uint16_t* out, int64_t count) {
  constexpr int64_t kLine = 32;
  const int64_t misaligned = static_cast<int64_t>(reinterpret_cast<uintptr_t>(out) % 64) / 2;
  const int64_t head = misaligned ? std::min(count, kLine - misaligned) : 0;
  round_to_bf16_avx512(in, out, head);
  int64_t i = head;
  for (; i + kLine <= count; i += kLine) {
    // lanes 0-15 from in[i..], 16-31 from in[i + 16..]
    const __m512bh packed = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(in + i + 16), _mm512_loadu_ps(in + i));
    _mm512_stream_si512(reinterpret_cast<__m512i*>(out + i), reinterpret_cast<const __m512i&>(packed));
  }
  _mm_sfence();  // the stores are weakly ordered: done before another thread reads them
  round_to_bf16_avx512(in + i, out + i, count - i);
}

// in [rows, cols] rounded into `plain` (the same layout) and `interleaved`
// (pair-interleaved, vnni_offset) in one pass over in, on the team: a row
// pair's 32 columns at a time give each copy whole 64-byte stores. Rows a
// multiple of kVnniRows, columns of kVnniCols. The second copy costs fc6's
// weight (102.8 M values, 2 threads, Zen 5) ~4.4 ms over rounding it alone
// (10.4 -> 14.8 ms in a driver), against ~17 ms its backward-data saves.
template <bool kStreaming>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
void round_plain_and_interleaved_avx512(const float* in, int64_t rows, int64_t cols, uint16_t* plain,
                                        uint16_t* interleaved) {
  const int64_t pairs = rows / 2;
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
  for (int64_t pair = 0; pair < pairs; ++pair) {
    const float* even = in + 2 * pair * cols;
    const float* odd = even + cols;
    uint16_t* even_out = plain + 2 * pair * cols;
    for (int64_t col = 0; col < cols; col += 32) {
      const __m512 even_lo = _mm512_loadu_ps(even + col), even_hi = _mm512_loadu_ps(even + col + 16);
      const __m512 odd_lo = _mm512_loadu_ps(odd + col), odd_hi = _mm512_loadu_ps(odd + col + 16);
      const __m512bh even_words = _mm512_cvtne2ps_pbh(even_hi, even_lo);
      const __m512bh odd_words = _mm512_cvtne2ps_pbh(odd_hi, odd_lo);
      uint16_t* at = interleaved + vnni_offset(2 * pair, col, rows);  // columns col..col + 31: 64 words in a row
      const __m512i lines[4] = {reinterpret_cast<const __m512i&>(even_words),
                                reinterpret_cast<const __m512i&>(odd_words), pair_words(even_lo, odd_lo),
                                pair_words(even_hi, odd_hi)};
      uint16_t* const places[4] = {even_out + col, even_out + cols + col, at, at + 32};
      for (int line = 0; line < 4; ++line) {
        if constexpr (kStreaming)
          _mm512_stream_si512(reinterpret_cast<__m512i*>(places[line]), lines[line]);
        else
          _mm512_store_si512(places[line], lines[line]);
      }
    }
  }
  _mm_sfence();  // the streaming stores are weakly ordered: done before another thread reads them
}

uint16_t round_one(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}

// C = alpha * op(A) op(B) + beta * C with both operands rounded
void run_matmul(const Shape& shape, const uint16_t* a16, const uint16_t* b16, float* c) {
  BoundMatmul& mm = bound_matmul_for(shape);
  thread_local dnnl::stream stream(cpu_engine());
  mm.a.set_data_handle(const_cast<uint16_t*>(a16));
  mm.b.set_data_handle(const_cast<uint16_t*>(b16));
  mm.c.set_data_handle(c);
  mm.scratch.set_data_handle(thread_buffers().scratch.get<char>(mm.matmul->scratch.get_size()));
  // the C API with a fixed argument array: the C++ execute builds a map and a vector per call
  const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, mm.a.get()},
                                  {DNNL_ARG_WEIGHTS, mm.b.get()},
                                  {DNNL_ARG_DST, mm.c.get()},
                                  {DNNL_ARG_SCRATCHPAD, mm.scratch.get()}};
  dnnl::error::wrap_c_api(dnnl_primitive_execute(mm.matmul->primitive.get(), stream.get(), 4, args),
                          "could not execute a bf16 matmul");
  stream.wait();
}

// Thresholds of run_in_chunks, from the shapes they were measured on.
constexpr int64_t kChunkedRows = 16384;            // m above: rows in halves or more
constexpr int64_t kChunkedDepth = 16384;           // k from: depth in chunks of at most 4096
constexpr int64_t kManyRows = 1024;                // the depth and column splits only for A of this many rows
constexpr int64_t kDepthChunk = 4096;
constexpr int64_t kColumnSplitMaxDepth = 1024;     // B^T of k up to this,
constexpr int64_t kColumnChunkBytes = 512 * 1024;  // over twice this: columns in chunks of it

// The splits run_in_chunks tries, in order; each part goes on to the later ones.
enum class Split { rows, depth, columns };

// run_matmul on the shape's GEMM, as several GEMMs where one large one runs
// slow: oneDNN's bf16 matmul repacks B for each block of A's rows, and a
// large B's repacked panel no longer stays in L2 (measured on VGG16 FCN's
// fc6 at 500x500, 2 threads, Zen 5 with AVX512-BF16: weight gradient
// [4096 x 256] x [256 x 25088]^T 84 -> 66 ms in column chunks, forward
// [4096 x 25088] x [25088 x 256] 89 -> 75 ms in depth chunks added into C,
// backward-data [25088 x 4096] x [4096 x 256] 94 -> 81 ms in row halves;
// fc7's weight gradient 13.2 -> 10.8 ms). The parts are strided blocks,
// which oneDNN runs with its gemm:jit kernels rather than brgemm; on a
// short A (conv1_1's weight gradient, 64 rows, 77308 deep) that lost
// (2 -> 13 ms a step), and ResNets' weight gradients of 256 and 512 rows
// gained nothing in column chunks; hence those two splits only from 1024
// rows, where A has many blocks for B to be repacked for. The
// shapes of conv layers and Winograd's blocks stay one call.
void run_in_chunks(const Shape& shape, const uint16_t* a, const uint16_t* b, float* c, Split from = Split::rows) {
  Shape part = shape;
  if (from <= Split::rows && shape.m > kChunkedRows) {
    const int64_t size = chunk_size(shape.m, kChunkedRows, 64);
    for (int64_t m0 = 0; m0 < shape.m; m0 += size) {
      part.m = std::min(size, shape.m - m0);
      run_in_chunks(part, a + (shape.trans_a ? m0 : m0 * shape.lda), b, c + m0 * shape.ldc, Split::depth);
    }
    return;
  }
  if (from <= Split::depth && shape.k >= kChunkedDepth && shape.m >= kManyRows) {
    const int64_t size = chunk_size(shape.k, kDepthChunk, 32);
    for (int64_t k0 = 0; k0 < shape.k; k0 += size) {
      part.k = std::min(size, shape.k - k0);
      part.beta = k0 == 0 ? shape.beta : 1.f;  // C = alpha A B + beta C, the later chunks added
      run_in_chunks(part, a + (shape.trans_a ? k0 * shape.lda : k0), b + (shape.trans_b ? k0 : k0 * shape.ldb), c,
                    Split::columns);
    }
    return;
  }
  const int64_t column_chunk = kColumnChunkBytes / 2 / std::max<int64_t>(1, shape.k);  // columns of bf16 B^T
  if (from <= Split::columns && shape.trans_b && !shape.b_blocked && shape.k <= kColumnSplitMaxDepth && shape.m >= kManyRows &&
      shape.n > 2 * column_chunk) {
    const int64_t size = chunk_size(shape.n, column_chunk, 64);
    for (int64_t n0 = 0; n0 < shape.n; n0 += size) {
      part.n = std::min(size, shape.n - n0);
      run_matmul(part, a, b + n0 * shape.ldb, c + n0);
    }
    return;
  }
  run_matmul(shape, a, b, c);
}

struct Registered {
  const float* data;
  int64_t count;
  const uint16_t* rounded;
  const uint16_t* interleaved = nullptr;  // RoundedCopy's pair-interleaved copy, when it keeps one
};
std::mutex registry_mutex;
std::vector<Registered> registry;  // the live RoundedOperands

// The rounded copy of `a` when a RoundedOperand or RoundedCopy holds it, else null.
const uint16_t* registered_rounding(const float* a) {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  for (const Registered& r : registry)
    if (a >= r.data && a < r.data + r.count) return r.rounded + (a - r.data);
  return nullptr;
}

// Whether a registered copy covers all of [data, data + count).
bool registered_whole(const float* data, int64_t count) {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  for (const Registered& r : registry)
    if (data >= r.data && data + count <= r.data + r.count) return true;
  return false;
}

void unregister(const uint16_t* rounded) {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  for (size_t i = 0; i < registry.size(); ++i)
    if (registry[i].rounded == rounded) {
      registry.erase(registry.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
}

// One buffer per live RoundedOperand of this thread, innermost last.
struct RoundingBuffers {
  std::vector<std::unique_ptr<GrowingBuffer>> levels;
  size_t depth = 0;
};
RoundingBuffers& rounding_buffers() {
  thread_local RoundingBuffers buffers;
  return buffers;
}

}  // namespace

const uint16_t* interleaved_rounding(const float* data, int64_t count) {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  for (const Registered& r : registry)
    if (r.data == data && r.count == count) return r.interleaved;
  return nullptr;
}

const Bf16Support& bf16_support() {
  static const Bf16Support support = detect_bf16();
  return support;
}

void require_bf16(const std::string& field) {
  const Bf16Support& support = bf16_support();
  if (!support.available)
    throw Error(field + " \"bf16\": " + support.missing + "; use \"fp32\" on this machine");
}

void round_to_bf16(const float* in, uint16_t* out, int64_t count) {
  if (bf16_support().available) return round_to_bf16_avx512(in, out, count);
  for (int64_t i = 0; i < count; ++i) out[i] = round_one(in[i]);
}

float bf16_to_float(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float result;
  std::memcpy(&result, &bits, sizeof result);
  return result;
}

RoundedOperand::RoundedOperand(Precision precision, const float* data, int64_t count) {
  if (precision != Precision::bf16 || count <= 0 || registered_whole(data, count)) return;
  RoundingBuffers& buffers = rounding_buffers();
  if (buffers.levels.size() <= buffers.depth) buffers.levels.push_back(std::make_unique<GrowingBuffer>());
  uint16_t* rounded = buffers.levels[buffers.depth++]->get<uint16_t>(static_cast<size_t>(count));
  round_to_bf16_parallel(data, rounded, count);
  data_ = data;
  rounded_ = rounded;
  const std::lock_guard<std::mutex> lock(registry_mutex);
  registry.push_back({data, count, rounded});
}

RoundedOperand::~RoundedOperand() {
  if (!data_) return;
  --rounding_buffers().depth;
  unregister(rounded_);
}

struct RoundedCopy::Storage {
  GrowingBuffer buffer, interleaved;
  const uint16_t* rounded = nullptr;
};

RoundedCopy::RoundedCopy() : storage_(std::make_unique<Storage>()) {}

RoundedCopy::~RoundedCopy() { release(); }

void RoundedCopy::hold(Precision precision, const float* data, int64_t count, int64_t interleaved_rows) {
  release();
  if (precision != Precision::bf16 || count <= 0) return;
  uint16_t* rounded = storage_->buffer.get<uint16_t>(static_cast<size_t>(count));
  // fc6's weight (205 MB in bf16) streams past the caches: rounding it 9.8 -> 7.6 ms (Zen 5, 2 threads); fc7's
  // (34 MB), which its GEMM may still find in L3, and smaller ones are stored plainly
  constexpr int64_t kStreamingFrom = int64_t{32} << 20;  // values
  const bool streaming = count >= kStreamingFrom;
  uint16_t* interleaved = nullptr;
  if (interleaved_rows > 0 && bf16_support().available) {
    const int64_t cols = count / interleaved_rows;
    if (interleaved_rows % kVnniRows != 0 || cols % kVnniCols != 0 || cols * interleaved_rows != count)
      throw Error("RoundedCopy: an interleaved copy needs rows of a multiple of 16 and columns of 64");
    interleaved = storage_->interleaved.get<uint16_t>(static_cast<size_t>(count));
    (streaming ? round_plain_and_interleaved_avx512<true> : round_plain_and_interleaved_avx512<false>)(
        data, interleaved_rows, cols, rounded, interleaved);
  } else {
    round_to_bf16_parallel(data, rounded, count, streaming);
  }
  storage_->rounded = rounded;
  data_ = data;
  const std::lock_guard<std::mutex> lock(registry_mutex);
  registry.push_back({data, count, rounded, interleaved});
}

void RoundedCopy::release() {
  if (!data_) return;
  unregister(storage_->rounded);
  data_ = nullptr;
}

namespace {

// Whether gemm_bf16 rounds B into the pair-interleaved layout and runs the
// whole depth as one GEMM: the deep GEMMs of many rows, which run_in_chunks
// would split by depth (fc6's forward, [4096 x 25088] x [25088 x 256] at
// 500x500) or run with a row-major B (fc7's, [4096 x 4096] x [4096 x 256]).
// fc6's parts are strided blocks, which oneDNN runs on its gemm:jit
// kernels; one call with B blocked runs on brgemm (Zen 5, 2 threads, a
// driver: 73-77 -> 67-70 ms in one hour, 77 -> 67 in another). fc7's
// forward (conv_forward, rounding included) 13.7-13.9 -> 13.1-13.8 ms,
// three alternated rounds.
// Only where B needs no padding and A is dense and not transposed (oneDNN
// 2.6 runs a strided A, or output scales, with a blocked B on its reference
// implementation, ~1000x slower; gemm_bf16 asks the primitive besides).
constexpr int64_t kBlockedBDepth = 4096;  // k from
bool takes_blocked_b(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, int64_t lda) {
  return !trans_a && !trans_b && lda == k && m >= kManyRows && k >= kBlockedBDepth && k % kVnniRows == 0 &&
         n % kVnniCols == 0;
}

// B [k, n] of floats (row stride ldb) rounded into the pair-interleaved
// layout (vnni_offset; k even, n a multiple of 16), 16 columns of a row pair
// at a time, each a whole 64-byte store; on the team outside a parallel
// region. Only where gemm_bf16 runs, on a CPU with AVX512-BF16. The place of
// a whole, aligned chunk is set here rather than by interleaved_lanes, an
// exported function the compiler does not inline: a call per chunk doubled
// this pass (fc6's 25088 x 256 columns, 2 threads: 0.7 -> 1.5 ms).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
const uint16_t* convert_blocked(const float* b, int64_t k, int64_t n, int64_t ldb, GrowingBuffer& buffer) {
  uint16_t* out = buffer.get<uint16_t>(static_cast<size_t>(k * n));
  const int64_t pairs = k / 2, chunks = n / 16;
#pragma omp parallel for schedule(static) if (k * n >= (int64_t{1} << 17) && !omp_in_parallel())
  for (int64_t pair = 0; pair < pairs; ++pair) {
    const float* even = b + 2 * pair * ldb;
    InterleavedLanes place;
    place.mask = 0x55555555u;  // the 16 lanes' even words: a 16-column chunk never leaves its 64-column block
    for (int64_t q = 0; q < chunks; ++q) {
      place.out = out + vnni_offset(2 * pair, 16 * q, k);
      round_lane_pairs_interleaved_avx512(even + 16 * q, even + ldb + 16 * q, 1, place, 0);
    }
  }
  return out;
}

}  // namespace

void gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  require_bf16("model.precision");
  ThreadBuffers& buffers = thread_buffers();
  // A is stored [m, k] or [k, m], B [k, n] or [n, k]
  const uint16_t* a16 = registered_rounding(a);
  if (!a16) {
    a16 = convert_rows(a, trans_a ? k : m, trans_a ? m : k, lda, buffers.a);
    lda = trans_a ? m : k;  // the dense copy's
  }
  if (takes_blocked_b(trans_a, trans_b, m, n, k, lda)) {
    Shape shape{false, false, m, n, k, lda, 0, ldc, alpha, beta};
    shape.b_blocked = true;
    if (!matmul_for(shape)->reference) return run_matmul(shape, a16, convert_blocked(b, k, n, ldb, buffers.b), c);
  }
  const uint16_t* b16 = convert_rows(b, trans_b ? n : k, trans_b ? k : n, ldb, buffers.b);
  run_in_chunks({trans_a, trans_b, m, n, k, lda, trans_b ? k : n, ldc, alpha, beta}, a16, b16, c);
}

void gemm_bf16_rounded(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda,
                       const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  require_bf16("model.precision");
  run_in_chunks({trans_a, trans_b, m, n, k, lda, ldb, ldc, 1.f, beta}, a, b, c);
}

void gemm_bf16_rounded_blocked_b(bool trans_a, int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda,
                                 const uint16_t* b, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  require_bf16("model.precision");
  if (k % kVnniRows != 0 || n % kVnniCols != 0)
    throw Error("gemm_bf16_rounded_blocked_b: k must be a multiple of 16 and n of 64");
  Shape shape{trans_a, false, m, n, k, lda, 0, ldc, 1.f, beta};
  shape.b_blocked = true;
  run_matmul(shape, a, b, c);
}

void round_lanes_to_bf16(const float* lanes_in, int lanes, int rows, uint16_t* out, int64_t stride) {
  if (!bf16_support().available) {
    for (int r = 0; r < rows; ++r)
      for (int l = 0; l < lanes; ++l) out[r * stride + l] = round_one(lanes_in[r * 16 + l]);
    return;
  }
  round_lanes_avx512(lanes_in, lanes, rows, out, stride);
}

void round_lanes_to_bf16_interleaved(const float* lanes_in, int count, const InterleavedLanes& place,
                                     int64_t stride) {
  if (bf16_support().available) return round_lanes_interleaved_avx512(lanes_in, count, place, stride);
  for (int r = 0; r < count; ++r)
    for (int l = 0; l < 16; ++l) {
      const uint32_t bit = 1u << (2 * l + place.parity);
      const uint16_t value = round_one(lanes_in[r * 16 + l]);
      if (place.mask & bit) place.out[r * stride + 2 * l + place.parity] = value;
      if (place.mask2 & bit) place.out2[r * stride + 2 * l + place.parity] = value;
    }
}

void round_lane_pairs_to_bf16_interleaved(const float* even_in, const float* odd_in, int count,
                                          const InterleavedLanes& place, int64_t stride) {
  if (place.parity != 0) throw Error("round_lane_pairs_to_bf16_interleaved: the pair must start on an even row");
  if (bf16_support().available) return round_lane_pairs_interleaved_avx512(even_in, odd_in, count, place, stride);
  InterleavedLanes odd = place;
  odd.parity = 1;
  odd.mask = place.mask << 1;
  odd.mask2 = place.mask2 << 1;
  round_lanes_to_bf16_interleaved(even_in, count, place, stride);
  round_lanes_to_bf16_interleaved(odd_in, count, odd, stride);
}

void round_to_bf16_parallel(const float* in, uint16_t* out, int64_t count, bool streaming) {
  constexpr int64_t kChunk = int64_t{1} << 16;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  auto* const round_chunk = streaming && bf16_support().available ? stream_to_bf16_avx512 : round_to_bf16;
#pragma omp parallel for schedule(static) if (chunks > 1 && !omp_in_parallel())
  for (int64_t i = 0; i < chunks; ++i)
    round_chunk(in + i * kChunk, out + i * kChunk, std::min(kChunk, count - i * kChunk));
}

}  // namespace fcn::cpu
