#pragma once
// Data-parallel training across processes (`mpirun -np N fcn train ...`).
//
// Every rank holds the whole model. Step t with k = batch_size x iter_size
// images per rank consumes the global samples t*N*k ... t*N*k + N*k - 1 of
// the single-process order; rank r takes the k starting at t*N*k + r*k
// (rank_sample_index), in passes of batch_size. Every random draw of a
// sample is seeded from its global index, the summed gradients are divided
// by N x iter_size (the passes), so N ranks x iter_size k follow the
// trajectory of one process with iter_size N*k (up to float summation
// order; nets with batch norm in train mode: each rank normalises with its
// own batch, see average_learned_state).
//
// Communicator: the process's world (MPI_COMM_WORLD when fcn was built with
// MPI and started by an MPI launcher, else a single process whose
// collectives are no-ops), so the trainer calls the same functions either
// way. GradientReducer: sums the trainable params' gradients over the ranks
// in buckets of solver.allreduce_bucket_mb, started by the graph's backward
// hook as soon as the last layer of a bucket finished its backward (only in
// the step's last pass), on a communication thread, so sending overlaps the
// rest of backward. FCN_ALLREDUCE_OVERLAP=0 starts every bucket only after
// backward (to measure what the overlap hides).
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace fcn {

class Graph;
struct Param;

class Communicator {
 public:
  // Initialises MPI on first use when built with it and launched by mpirun
  // (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK set); finalises at exit.
  static Communicator& world();
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_size() const { return local_size_; }  // ranks on this host
  bool is_root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }

  // Blocking, in place, identical on every rank afterwards. Called by one
  // thread at a time (the reducer's thread only while a step's buckets are
  // in flight).
  void allreduce_sum(float* data, size_t n);
  void allreduce_sum(double* data, size_t n);
  void allreduce_sum(int64_t* data, size_t n);
  int64_t allreduce_min(int64_t value);
  int64_t allreduce_max(int64_t value);

  // Non-blocking sum in place: start, then test() until it returns true
  // (each test drives MPI's progress). The buffer must stay untouched until
  // then.
  int64_t start_allreduce_sum(float* data, size_t n);
  bool test(int64_t handle);

  // "error: rank R: <message>" on stderr, then MPI_Abort(MPI_COMM_WORLD,
  // code): the launcher ends every rank instead of leaving them waiting in a
  // collective. Without MPI: the message and exit(code).
  [[noreturn]] void abort_with_error(const std::string& message, int code = 1);

 private:
  Communicator();
  int rank_ = 0, size_ = 1, local_size_ = 1;
  bool mpi_ = false;
  struct Impl;  // the requests in flight
  std::unique_ptr<Impl> impl_;
};

// The global sample index of this rank's `local_count`-th sample (0-based,
// counted over the whole run) with `per_step` samples per rank and step
// (batch_size x iter_size).
int64_t rank_sample_index(int64_t local_count, int64_t per_step, int rank, int size);
// The share [begin, end) of `count` items that `rank` handles: contiguous
// blocks, the first `count % size` ranks one item more.
std::pair<int64_t, int64_t> rank_share(int64_t count, int rank, int size);
// Throws `problem` (on every rank alike) when the ranks' params differ (every
// param, running statistics included, bit for bit): at start an init or
// resume file that is not the same on every host; after training a bug.
void check_same_params(Communicator& comm, Graph& graph,
                       const std::string& problem = "the ranks start from different weights: is every file of "
                                                    "init.weights / --resume the same on every host?");
// Replaces each learned-state param the solver does not update (a batch
// norm's running statistics; Param::learned_state and frozen) by its mean
// over the ranks, summed in double: equal values stay exactly equal, and the
// ranks hold one model again after each rank's batch norms moved their
// statistics with their own batches.
void average_learned_state(Communicator& comm, Graph& graph);
// solver.threads for this rank: `configured` when positive or with one
// rank; for 0 (all cores) with several ranks, the cores the launcher bound
// this rank to, or when it is not bound, the host's cores / its ranks.
int threads_per_rank(int configured, const Communicator& comm);
// FCN_ALLREDUCE_OVERLAP: unset or anything but "0"/"off"/"false" = on.
bool allreduce_overlap_from_env();

struct ReducerStats {
  int64_t steps = 0;
  double wait_seconds = 0;    // main thread blocked in finish(), after backward
  double reduce_seconds = 0;  // first bucket started -> last bucket done (pack, sum, unpack)
};

class GradientReducer {
 public:
  // Plans buckets over the graph's trainable params in backward (reverse
  // layer) order; a bucket closes once it holds bucket_mb MiB, and a param
  // of that size or more gets a bucket of its own. The params must be sized
  // (after the graph's first reshape).
  GradientReducer(Communicator& comm, Graph& graph, double bucket_mb, bool overlap);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Before the step's last backward pass: with overlap, installs the graph's
  // backward hook that hands each bucket to the communication thread as soon
  // as all its params' gradients are final.
  void begin_last_pass();
  // After the last backward: removes the hook, starts what is left and waits
  // for every bucket. Each trainable gradient then holds the sum over ranks.
  void finish();

  const std::vector<std::vector<Param*>>& buckets() const { return bucket_params_; }
  size_t total_bytes() const { return total_floats_ * sizeof(float); }
  bool overlap() const { return overlap_; }
  const ReducerStats& stats() const { return stats_; }

 private:
  void on_layer_done(size_t layer_index);
  void enqueue_ready();
  void enqueue(size_t bucket);
  void run_thread();
  void pack(size_t bucket);
  void unpack(size_t bucket);

  Communicator& comm_;
  Graph& graph_;
  bool overlap_;
  std::vector<std::vector<Param*>> bucket_params_;
  std::vector<size_t> bucket_floats_;
  std::vector<std::vector<float>> buffers_;     // packed buckets (empty for a one-param bucket)
  std::vector<std::vector<size_t>> layer_buckets_;  // per layer: the bucket of each of its trainable params
  size_t total_floats_ = 0;
  // this step
  std::vector<size_t> remaining_;  // per bucket: params whose gradient is not final yet
  size_t next_enqueue_ = 0;        // buckets handed to the thread this step
  ReducerStats stats_;
  // shared with the communication thread
  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t queued_ = 0, done_ = 0;  // buckets handed over / completed, over the whole run
  bool stopping_ = false;
  double step_reduce_seconds_ = 0;
  std::thread thread_;
};

}  // namespace fcn
