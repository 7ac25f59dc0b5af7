#include "fcn/train/distributed.hpp"

#include <deque>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include <sched.h>
#include <spdlog/spdlog.h>

#ifdef FCN_HAVE_MPI
#include <mpi.h>
#endif

#include "fcn/core/environment.hpp"
#include "fcn/core/error.hpp"
#include "fcn/graph/graph.hpp"

namespace fcn {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Set by OpenMPI's mpirun, MPICH/Hydra and PMIx launchers (srun too).
bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (env_value(name)) return true;
  return false;
}

#ifdef FCN_HAVE_MPI
// MPI counts are ints: larger buffers go in pieces of this many elements.
constexpr size_t kMaxCount = size_t{1} << 30;

template <typename T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <>
MPI_Datatype mpi_type<int64_t>() { return MPI_INT64_T; }

template <typename T>
void mpi_allreduce(T* data, size_t n, MPI_Op op) {
  for (size_t offset = 0; offset < n; offset += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, n - offset));
    MPI_Allreduce(MPI_IN_PLACE, data + offset, count, mpi_type<T>(), op, MPI_COMM_WORLD);
  }
}
#endif

}  // namespace

struct Communicator::Impl {
  int64_t next_handle = 0;
#ifdef FCN_HAVE_MPI
  std::map<int64_t, std::vector<MPI_Request>> requests;
#endif
};

Communicator& Communicator::world() {
  static Communicator instance;
  return instance;
}

Communicator::Communicator() : impl_(std::make_unique<Impl>()) {
#ifdef FCN_HAVE_MPI
  if (!launched_by_mpi()) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    // the reducer's thread calls MPI while the main thread computes, never both at once
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
      throw Error("MPI_Init_thread failed");
    if (provided < MPI_THREAD_SERIALIZED)
      throw Error("the MPI library does not support calls from a second thread (MPI_THREAD_SERIALIZED), which the "
                  "gradient reducer needs");
  }
  mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
#else
  // N copies of a single-process fcn would each train alone into the same --out
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    const std::optional<std::string> value = env_value(name);
    if (value && std::atoi(value->c_str()) > 1)
      throw Error("started by an MPI launcher with " + *value +
                  " processes, but this fcn was built without MPI (fcn --version); install libopenmpi-dev and rebuild");
  }
#endif
}

Communicator::~Communicator() {
#ifdef FCN_HAVE_MPI
  if (!mpi_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
#endif
}

void Communicator::allreduce_sum(float* data, size_t n) {
#ifdef FCN_HAVE_MPI
  if (mpi_ && size_ > 1) mpi_allreduce(data, n, MPI_SUM);
#endif
}

void Communicator::allreduce_sum(double* data, size_t n) {
#ifdef FCN_HAVE_MPI
  if (mpi_ && size_ > 1) mpi_allreduce(data, n, MPI_SUM);
#endif
}

void Communicator::allreduce_sum(int64_t* data, size_t n) {
#ifdef FCN_HAVE_MPI
  if (mpi_ && size_ > 1) mpi_allreduce(data, n, MPI_SUM);
#endif
}

int64_t Communicator::allreduce_min(int64_t value) {
#ifdef FCN_HAVE_MPI
  if (mpi_ && size_ > 1) mpi_allreduce(&value, 1, MPI_MIN);
#endif
  return value;
}

int64_t Communicator::allreduce_max(int64_t value) {
#ifdef FCN_HAVE_MPI
  if (mpi_ && size_ > 1) mpi_allreduce(&value, 1, MPI_MAX);
#endif
  return value;
}

int64_t Communicator::start_allreduce_sum(float* data, size_t n) {
  const int64_t handle = impl_->next_handle++;
#ifdef FCN_HAVE_MPI
  if (mpi_ && size_ > 1) {
    std::vector<MPI_Request>& requests = impl_->requests[handle];
    for (size_t offset = 0; offset < n; offset += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, n - offset));
      requests.emplace_back();
      MPI_Iallreduce(MPI_IN_PLACE, data + offset, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &requests.back());
    }
  }
#endif
  return handle;
}

bool Communicator::test(int64_t handle) {
#ifdef FCN_HAVE_MPI
  auto it = impl_->requests.find(handle);
  if (it == impl_->requests.end()) return true;
  int complete = 0;
  MPI_Testall(static_cast<int>(it->second.size()), it->second.data(), &complete, MPI_STATUSES_IGNORE);
  if (!complete) return false;
  impl_->requests.erase(it);
#endif
  return true;
}

void Communicator::abort_with_error(const std::string& message, int code) {
  std::fprintf(stderr, "error: rank %d: %s\n", rank_, message.c_str());
  std::fflush(stderr);
#ifdef FCN_HAVE_MPI
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::_Exit(code);
}

int64_t rank_sample_index(int64_t local_count, int64_t per_step, int rank, int size) {
  const int64_t step = local_count / per_step, within = local_count % per_step;
  return step * size * per_step + rank * per_step + within;
}

void average_learned_state(Communicator& comm, Graph& graph) {
  std::vector<Param*> state;
  size_t total = 0;
  for (Param* p : graph.params())
    if (p->learned_state && p->frozen()) {
      state.push_back(p);
      total += static_cast<size_t>(p->data.numel());
    }
  if (state.empty() || comm.size() == 1) return;
  std::vector<double> values;
  values.reserve(total);
  for (const Param* p : state) values.insert(values.end(), p->data.data(), p->data.data() + p->data.numel());
  comm.allreduce_sum(values.data(), values.size());
  size_t at = 0;
  for (Param* p : state)
    for (int64_t i = 0; i < p->data.numel(); ++i) p->data[i] = static_cast<float>(values[at++] / comm.size());
}

std::pair<int64_t, int64_t> rank_share(int64_t count, int rank, int size) {
  const int64_t base = count / size, extra = count % size;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

void check_same_params(Communicator& comm, Graph& graph, const std::string& problem) {
  // FNV-1a style, 8 bytes at a time, over the names and raw bits of every param
  uint64_t hash = 14695981039346656037ull;
  auto mix = [&hash](const void* data, size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; i += 8) {
      uint64_t word = 0;
      std::memcpy(&word, p + i, std::min<size_t>(8, bytes - i));
      hash = (hash ^ word) * 1099511628211ull;
    }
  };
  for (const Param* p : graph.params()) {
    mix(p->name.data(), p->name.size());
    mix(p->data.data(), static_cast<size_t>(p->data.numel()) * sizeof(float));
  }
  const auto value = static_cast<int64_t>(hash);
  if (comm.allreduce_min(value) != comm.allreduce_max(value))
    throw Error(problem);
}

int threads_per_rank(int configured, const Communicator& comm) {
  if (configured > 0 || !comm.distributed()) return configured;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) {
    const int bound = CPU_COUNT(&mask);
    if (bound > 0 && bound < cores) {  // mpirun --bind-to core/socket/...: use what we were given
      if (bound == 1 && cores / comm.local_size() > 1 && comm.is_root())
        spdlog::warn("mpirun bound each rank to 1 core (its default for 2 ranks): 1 compute thread per rank; "
                     "mpirun --bind-to none (or --map-by socket:PE=<cores per rank>) gives each rank {} cores",
                     cores / comm.local_size());
      return bound;
    }
  }
  return std::max(1, cores / comm.local_size());
}

bool allreduce_overlap_from_env() {
  return env_flag("FCN_ALLREDUCE_OVERLAP", true);
}

// ---------------------------------------------------------------------------
// GradientReducer

GradientReducer::GradientReducer(Communicator& comm, Graph& graph, double bucket_mb, bool overlap)
    : comm_(comm), graph_(graph), overlap_(overlap) {
  const double limit = std::max(0.0, bucket_mb) * 1024.0 * 1024.0;  // bytes
  const auto& layers = graph.layers();
  layer_buckets_.resize(layers.size());
  bool open = false;
  for (size_t i = layers.size(); i-- > 0;) {  // backward order
    for (Param* p : layers[i]->params()) {
      if (p->frozen()) continue;
      // a param of a bucket's size or more goes alone (summed in place, no copy)
      if (static_cast<double>(p->grad.numel()) * sizeof(float) >= limit) open = false;
      if (!open) {
        bucket_params_.emplace_back();
        bucket_floats_.push_back(0);
        open = true;
      }
      const size_t b = bucket_params_.size() - 1;
      bucket_params_[b].push_back(p);
      bucket_floats_[b] += static_cast<size_t>(p->grad.numel());
      total_floats_ += static_cast<size_t>(p->grad.numel());
      layer_buckets_[i].push_back(b);
      if (static_cast<double>(bucket_floats_[b] * sizeof(float)) >= limit) open = false;
    }
  }
  buffers_.resize(bucket_params_.size());
  for (size_t b = 0; b < bucket_params_.size(); ++b)
    if (bucket_params_[b].size() > 1) buffers_[b].resize(bucket_floats_[b]);
  remaining_.resize(bucket_params_.size());
  thread_ = std::thread([this] { run_thread(); });
}

GradientReducer::~GradientReducer() {
  graph_.set_backward_hook(nullptr);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void GradientReducer::begin_last_pass() {
  for (size_t b = 0; b < bucket_params_.size(); ++b) remaining_[b] = bucket_params_[b].size();
  next_enqueue_ = 0;
  if (overlap_) graph_.set_backward_hook([this](size_t layer_index) { on_layer_done(layer_index); });
}

void GradientReducer::on_layer_done(size_t layer_index) {
  for (size_t b : layer_buckets_[layer_index])
    if (remaining_[b] > 0) --remaining_[b];
  enqueue_ready();
}

// Buckets go out strictly in plan order (the same collective order on every
// rank), each once all of its params are final.
void GradientReducer::enqueue_ready() {
  while (next_enqueue_ < bucket_params_.size() && remaining_[next_enqueue_] == 0) enqueue(next_enqueue_++);
}

void GradientReducer::enqueue(size_t bucket) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++queued_;
  }
  changed_.notify_all();
}

void GradientReducer::finish() {
  graph_.set_backward_hook(nullptr);
  const Clock::time_point start = Clock::now();
  while (next_enqueue_ < bucket_params_.size()) enqueue(next_enqueue_++);
  double reduce_seconds = 0;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return done_ == queued_; });
    reduce_seconds = step_reduce_seconds_;
    step_reduce_seconds_ = 0;
  }
  stats_.wait_seconds += seconds_since(start);
  stats_.reduce_seconds += reduce_seconds;
  ++stats_.steps;
  next_enqueue_ = 0;
  for (size_t b = 0; b < bucket_params_.size(); ++b) remaining_[b] = bucket_params_[b].size();
}

void GradientReducer::pack(size_t bucket) {
  if (buffers_[bucket].empty()) return;
  float* out = buffers_[bucket].data();
  for (const Param* p : bucket_params_[bucket]) {
    std::memcpy(out, p->grad.data(), static_cast<size_t>(p->grad.numel()) * sizeof(float));
    out += p->grad.numel();
  }
}

void GradientReducer::unpack(size_t bucket) {
  if (buffers_[bucket].empty()) return;
  const float* in = buffers_[bucket].data();
  for (Param* p : bucket_params_[bucket]) {
    std::memcpy(p->grad.data(), in, static_cast<size_t>(p->grad.numel()) * sizeof(float));
    in += p->grad.numel();
  }
}

// The communication thread: starts the buckets handed over, in order, and
// drives MPI's progress (test) until each is summed, yielding the core to the
// compute threads between tests.
void GradientReducer::run_thread() {
  const size_t count = bucket_params_.size();
  int64_t launched = 0;
  std::deque<std::pair<size_t, int64_t>> in_flight;  // (bucket, handle)
  Clock::time_point step_start{};
  for (;;) {
    int64_t target = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (in_flight.empty()) changed_.wait(lock, [&] { return stopping_ || queued_ > launched; });
      if (stopping_ && in_flight.empty() && queued_ == launched) return;
      target = queued_;
    }
    for (; launched < target; ++launched) {
      const auto bucket = static_cast<size_t>(launched % static_cast<int64_t>(count));
      if (bucket == 0) step_start = Clock::now();
      pack(bucket);
      float* data = buffers_[bucket].empty() ? bucket_params_[bucket][0]->grad.data() : buffers_[bucket].data();
      in_flight.emplace_back(bucket, comm_.start_allreduce_sum(data, bucket_floats_[bucket]));
    }
    while (!in_flight.empty() && comm_.test(in_flight.front().second)) {
      const size_t bucket = in_flight.front().first;
      unpack(bucket);
      in_flight.pop_front();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ++done_;
        if (bucket + 1 == count) step_reduce_seconds_ += seconds_since(step_start);
      }
      changed_.notify_all();
    }
    if (!in_flight.empty()) std::this_thread::yield();
  }
}

}  // namespace fcn
