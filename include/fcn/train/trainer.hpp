#pragma once
// The training loop behind `fcn train`, as a library (tests and the
// data-parallel driver run it too).
//
// A run in DIR writes config.json (the resolved config, itself a valid
// --config), run.json (run_info.hpp), metrics.jsonl and curves.png
// (run_log.hpp; with diagnostics.hpp's figures at each logged step and
// training_monitor.hpp's warnings), val_samples.png (image | ground truth |
// prediction of the first validation images), report.html (report.hpp),
// checkpoints/iter_NNNNNNNN.safetensors every snapshot_every steps and at
// the end, and final.safetensors (the params alone).
//
// Batches: a step is iter_size passes (forward + backward) of batch_size
// images each (data/batch.hpp: padded to the batch's largest size), on each
// rank: B = batch_size x iter_size x ranks images per step. The step's
// gradient is the mean over its iter_size x ranks passes; within a pass the
// loss layer normalises over the batch (softmax_loss.hpp), so batch_size N
// and iter_size N give the same update on equal-size images without batch
// norm.
//
// Determinism: step t consumes the global samples t*B ... t*B+B-1
// (training_sample: order and augmentation depend only on data.seed and the
// index), however the step is split into passes and ranks, and each image
// of a pass draws (dropout) from its own generator seeded from
// (solver.seed, sample index), so dropout depends on the sample alone. A checkpoint therefore needs only params,
// momentum and the iteration, and a resumed run ends bit-identical to an
// uninterrupted one (same thread count).
//
// Data parallel (distributed.hpp): under mpirun every rank runs a Trainer;
// rank r loads the global samples rank_sample_index(...) of each step, the
// gradients are summed over the ranks (GradientReducer, overlapping backward)
// and divided by ranks x iter_size; batch norm in train mode normalises with
// each rank's own batch (not synchronised, as PyTorch DDP without
// SyncBatchNorm) and the running statistics are averaged over the ranks
// after every step (average_learned_state); validation is split across the ranks and
// the confusion matrices summed. Rank 0 alone logs and writes files.
//
// Faults: a non-finite loss or gradient stops training with an Error naming
// the iteration and the last good checkpoint (solver.on_nan "stop"), or skips
// that update with a warning ("skip"). SIGINT/SIGTERM set a flag: the
// current step finishes, a checkpoint is saved, and run() returns with the
// signal in TrainResult::stop_signal (a second signal kills at once).
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "fcn/model/config.hpp"
#include "fcn/data/batch.hpp"
#include "fcn/data/dataset.hpp"
#include "fcn/data/prefetcher.hpp"
#include "fcn/data/sampling.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/eval/metrics.hpp"
#include "fcn/train/run_directory.hpp"
#include "fcn/train/run_info.hpp"
#include "fcn/train/run_log.hpp"
#include "fcn/train/solver.hpp"
#include "fcn/train/stop_signals.hpp"
#include "fcn/train/training_monitor.hpp"

namespace fcn {

class Communicator;
class GradientReducer;

struct TrainOptions {
  Config config;
  std::string out_dir;
  std::string resume;        // checkpoint to continue from ("" = start at iteration 0)
  std::string init_weights;  // replaces config.init.weights when set
  bool overwrite = false;    // remove a previous run's files in out_dir first (run_directory.hpp)
  std::string command;       // the command line, for run.json and the report
  bool handle_signals = true;
  // Called after every iteration (after its checkpoint and validation) with
  // the iterations done, that iteration's loss and the ETA in seconds; it may
  // call request_stop() to end the run there as a signal does.
  std::function<void(int64_t iter, double loss, double eta_seconds)> on_step;
};

struct TrainResult {
  int64_t iter = 0;             // steps completed
  int stop_signal = 0;          // SIGINT or SIGTERM when one stopped the run early
  std::string checkpoint;       // the newest checkpoint written ("" when none)
  std::string final_weights;    // DIR/final.safetensors ("" when stopped early)
  double loss = 0.0;            // of the last step
};

class Trainer {
 public:
  // Opens the datasets, builds the graph, initialises it (seed, then
  // init.weights) or restores `resume`, and writes DIR/config.json.
  explicit Trainer(TrainOptions options);
  ~Trainer();

  TrainResult run();

  // The pieces of one step, for drivers that interleave their own work:
  // forward + backward of the step's iter_size batches into zeroed param
  // gradients; returns the mean loss over the passes.
  double accumulate_gradients(int64_t step);
  // Checks for non-finite values (on_nan), then the SGD update; false when
  // the update was skipped.
  bool apply_update(int64_t step, double loss, double lr);
  // Scores the first val_limit images of the val split (all when 0).
  Scores validate(int64_t iter);
  // Writes DIR/checkpoints/iter_NNNNNNNN.safetensors; returns its path.
  std::string save_checkpoint(int64_t iter, double lr);

  Graph& graph() { return *graph_; }
  int64_t start_iter() const { return start_iter_; }

 private:
  // Per-sample gradient sums for iter_size > 1 in one process (see
  // accumulate_gradients).
  void add_to_gradient_sum(bool first);
  void restore_gradient_sum();
  std::vector<Tensor> gradient_sum_;
  // The next batch_size samples of this rank, stacked.
  Batch next_batch();
  int64_t images_per_step() const;
  void open_datasets();
  void build_graph();
  void initialise_params();
  void write_resolved_config() const;
  void print_header();
  // One step of run(): gradients, update, log (with diagnostics on logged steps).
  void train_step(int64_t step, double lr, TrainResult& result);
  TrainResult run_steps();
  void warn(int64_t iter, const std::optional<TrainingWarning>& warning);
  // DIR/run.json with this state (rank 0).
  void update_run_info(const std::string& state, int64_t iter);
  // update_run_info, then DIR/report.html from the run's files (rank 0; a
  // failure to write only warns).
  void publish_state(const std::string& state, int64_t iter);
  // "median_frequency" -> weights from the training labels (class_frequency.hpp),
  // counted once by rank 0 and shared with the other ranks.
  void resolve_class_weights();
  std::vector<double> count_median_frequency_weights() const;
  void start_loader();
  void after_step(int64_t iter, double lr, TrainResult& result);
  void finish(double lr, TrainResult& result);
  std::string resume_command(const std::string& checkpoint) const;

  TrainOptions options_;
  const SolverConfig& solver_config_;
  Communicator& comm_;
  int threads_ = 1;
  std::unique_ptr<RunDirectory> run_dir_;  // rank 0: the locked out_dir
  std::unique_ptr<Dataset> train_set_, val_set_;
  std::unique_ptr<Graph> graph_;
  // only with several ranks; after graph_, so that it goes first (its
  // destructor takes its hook off the graph)
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<Solver> solver_;
  std::unique_ptr<Prefetcher> loader_;
  std::unique_ptr<RunLog> log_;
  std::unique_ptr<TrainingMonitor> monitor_;
  RunInfo run_info_;
  std::string config_hash_;
  int64_t start_iter_ = 0;
  int64_t completed_iter_ = 0;  // steps done, for run.json when a step throws
  int64_t next_sample_ = 0;  // the loader thread's next global sample index
  int64_t last_saved_iter_ = -1, last_validated_iter_ = -1;
  std::string last_checkpoint_;
};

}  // namespace fcn
