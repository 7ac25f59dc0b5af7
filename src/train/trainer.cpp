#include "fcn/train/trainer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "fcn/cpu/blas_kernel.hpp"
#include "fcn/cpu/elementwise.hpp"
#include "fcn/cpu/gemm.hpp"
#include "fcn/cpu/threads.hpp"
#include "fcn/train/checkpoint.hpp"
#include "fcn/data/batch.hpp"
#include "fcn/data/random.hpp"
#include "fcn/train/distributed.hpp"
#include "fcn/train/stop_signals.hpp"
#include "fcn/core/error.hpp"
#include "fcn/io/image_io.hpp"
#include "fcn/eval/evaluate_split.hpp"
#include "fcn/eval/inference.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/core/progress.hpp"
#include "fcn/data/class_frequency.hpp"
#include "fcn/train/diagnostics.hpp"
#include "fcn/train/report.hpp"

namespace fcn {

namespace {

const char* signal_name(int signal) { return signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "a signal"; }

constexpr int kGridRows = 4;  // validation images shown in val_samples.png

std::string count_str(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

Trainer::Trainer(TrainOptions options)
    : options_(std::move(options)), solver_config_(options_.config.solver), comm_(Communicator::world()) {
  Config& config = options_.config;
  if (!options_.init_weights.empty()) config.init.weights = options_.init_weights;
  if (config.data.root.empty() && config.data.train.empty())
    throw Error("config: the \"data\" section with data.root (or data.train and data.val) is needed for training");
  if (options_.out_dir.empty()) throw Error("train: no output directory given");
  threads_ = set_threads(threads_per_rank(solver_config_.threads, comm_));
  open_datasets();  // read-only: data errors come before anything is created in out_dir
  resolve_class_weights();
  build_graph();  // so do the model's (and bf16 on a CPU without it)
  if (comm_.is_root()) {
    // before anything is written: a used directory is refused, a busy one locked
    const RunDirectoryMode mode = options_.overwrite         ? RunDirectoryMode::overwrite
                                  : options_.resume.empty() ? RunDirectoryMode::fresh
                                                            : RunDirectoryMode::resume;
    run_dir_ = std::make_unique<RunDirectory>(options_.out_dir, mode, config.to_json());
  }
  // N ranks x iter_size k follow the trajectory of iter_size N*k: that is
  // what a checkpoint's hash must match on resume
  json hashed = config.to_json();
  if (comm_.distributed()) hashed["solver"]["iter_size"] = solver_config_.iter_size * comm_.size();
  config_hash_ = config_hash(hashed);
  SolverConfig solver = solver_config_;
  solver.iter_size *= comm_.size();  // the summed gradients of every rank's samples
  solver_ = std::make_unique<Solver>(solver);
  initialise_params();
  if (comm_.distributed()) {
    check_same_params(comm_, *graph_);
    reducer_ = std::make_unique<GradientReducer>(comm_, *graph_, solver_config_.allreduce_bucket_mb,
                                                 allreduce_overlap_from_env());
  }
  if (comm_.is_root()) {
    write_resolved_config();
    print_header();
    log_ = std::make_unique<RunLog>(options_.out_dir, start_iter_, solver_config_.max_iter, images_per_step(),
                                    solver_config_.display_every);
    monitor_ = std::make_unique<TrainingMonitor>(solver_config_, log_->warned_kinds());
    update_run_info("running", start_iter_);
  }
  start_loader();
}

Trainer::~Trainer() = default;

void Trainer::open_datasets() {
  const Config& config = options_.config;
  const int64_t classes = config.model.zoo.num_classes;
  train_set_ = std::make_unique<Dataset>(config.data, train_sources(config.data), classes);
  train_set_->validate();
  if (solver_config_.test_every > 0) {
    val_set_ = std::make_unique<Dataset>(config.data, val_sources(config.data), classes);
    val_set_->validate();
  }
}

void Trainer::resolve_class_weights() {
  ModelConfig& model = options_.config.model;
  if (!model.median_frequency()) return;
  // rank 0 reads the labels; the other ranks add zeros to its weights
  std::vector<double> weights(static_cast<size_t>(model.zoo.num_classes), 0.0);
  if (comm_.is_root()) weights = count_median_frequency_weights();
  if (comm_.distributed()) comm_.allreduce_sum(weights.data(), weights.size());
  model.resolved_class_weights = weights;
}

std::vector<double> Trainer::count_median_frequency_weights() const {
  Progress progress("class frequencies", train_set_->size());
  const LabelStats stats =
      collect_label_stats(*train_set_, threads_, [&](size_t done, size_t) { progress.update(done); });
  if (!stats.unreadable.empty())
    throw Error("model.class_weights \"median_frequency\": cannot read " + stats.unreadable.front());
  for (int64_t c = 0; c < stats.num_classes; ++c)
    if (stats.class_pixels[c] == 0)
      spdlog::warn("class {} has no pixel in the training labels: its median-frequency weight is 0", c);
  return median_frequency_weights(stats);
}

void Trainer::build_graph() {
  const ModelConfig& model = options_.config.model;
  // only the loss, and the scores in validation, are read after forward
  GraphOptions options;
  options.reuse_values = true;
  options.precision = model.precision;
  graph_ = std::make_unique<Graph>(model_graph_spec(model), model.graph.is_null() ? "model" : "model.graph", options);
  require_bgr_image_input(*graph_);
  const auto& inputs = graph_->input_names();
  if (inputs.size() != 2 || !graph_->has_blob("data") || !graph_->has_blob("label") ||
      graph_->input_channels("data") != 3 || graph_->input_channels("label") != 1)
    throw Error("model.graph.inputs: training needs exactly the inputs \"data\" (3 channels) and \"label\" (1 channel)");
  // Params are sized at the first reshape; any image size will do, so take
  // the first training image's.
  const ImageSize size = read_image_size(train_set_->image_path(0));
  graph_->reshape({{"data", {1, 3, size.height, size.width}}, {"label", {1, 1, size.height, size.width}}});
  const std::string score = score_blob_name(*graph_);
  const int64_t channels = graph_->blob_shape(score).at(1);
  if (channels != model.zoo.num_classes)
    throw Error("model.num_classes is " + std::to_string(model.zoo.num_classes) + " but the graph's score blob '" +
                score + "' has " + std::to_string(channels) + " channels");
}

void Trainer::initialise_params() {
  graph_->init_params(solver_config_.seed);
  if (!options_.resume.empty()) {
    if (!options_.init_weights.empty()) spdlog::warn("--init is ignored when resuming: the checkpoint holds every param");
    const CheckpointInfo info = load_checkpoint(options_.resume, *graph_, *solver_);
    if (!info.config_hash.empty() && info.config_hash != config_hash_)
      spdlog::warn("{} was written with a different config (hash {} vs {}); the run will not match an "
                   "uninterrupted one", options_.resume, info.config_hash, config_hash_);
    start_iter_ = completed_iter_ = info.iter;
    last_checkpoint_ = options_.resume;
    last_saved_iter_ = info.iter;
    return;
  }
  if (!options_.config.init.weights.empty()) load_init_weights(options_.config.init.weights, *graph_);
}

void Trainer::write_resolved_config() const {
  write_file_atomic(options_.out_dir + "/config.json", options_.config.to_json().dump(2) + "\n");
}

void Trainer::print_header() {
  const ModelConfig& model = options_.config.model;
  int64_t total = 0, trainable = 0;
  for (Param* p : graph_->params()) {
    total += p->data.numel();
    if (!p->frozen()) trainable += p->data.numel();
  }
  const std::string name = model.graph.is_null() ? model_title(model.zoo)
                                                 : "explicit graph (" + std::to_string(graph_->layers().size()) + " layers)";
  spdlog::info("model: {}, {} classes, {} params ({} trainable)", name, model.zoo.num_classes, count_str(total),
               count_str(trainable));
  if (!model.resolved_class_weights.empty()) {
    const std::vector<std::string> names = resolve_class_names(options_.config.data, model.zoo.num_classes);
    std::string weights;
    for (size_t c = 0; c < model.resolved_class_weights.size(); ++c)
      weights += fmt::format("{}{} {:.3g}", c ? ", " : "", names[c], model.resolved_class_weights[c]);
    spdlog::info("class weights{}: {}", model.median_frequency() ? " (median frequency)" : "", weights);
  }
  const SolverConfig& s = solver_config_;
  const int64_t val_images = val_set_ ? static_cast<int64_t>(val_set_->size()) : 0;
  const DataConfig& data = options_.config.data;
  spdlog::info("data: {} train images ({}), {} val images ({}){}", train_set_->size(),
               describe_sources(train_sources(data)), val_images, describe_sources(val_sources(data)),
               s.val_limit > 0 && val_images > s.val_limit ? ", validating on the first " + std::to_string(s.val_limit) : "");
  spdlog::info("solver: base_lr {:g} ({}), momentum {:g}, weight_decay {:g}, batch_size {} x iter_size {}{} = {} "
               "images per step, {} iterations, seed {}",
               s.base_lr, s.lr_policy, s.momentum, s.weight_decay, s.batch_size, s.iter_size,
               comm_.distributed() ? fmt::format(" x {} ranks", comm_.size()) : "", images_per_step(), s.max_iter,
               s.seed);
  spdlog::info("threads: {}; BLAS: {}", threads_, blas_kernel_report());
  spdlog::info("precision: {}", cpu::describe_precision(model.precision));
  if (reducer_)
    spdlog::info("data parallel: {} ranks ({} on this host) x batch_size {} x iter_size {} = {} images per step; "
                 "allreduce of {:.1f} MiB in {} buckets (solver.allreduce_bucket_mb {:g}), overlapped with backward: {}; "
                 "batch norm: each rank's batch statistics, running statistics averaged over the ranks after each step",
                 comm_.size(), comm_.local_size(), s.batch_size, s.iter_size, images_per_step(),
                 reducer_->total_bytes() / 1048576.0, reducer_->buckets().size(), s.allreduce_bucket_mb,
                 reducer_->overlap() ? "yes" : "no (FCN_ALLREDUCE_OVERLAP=0)");
  spdlog::info("out: {}{}", options_.out_dir,
               options_.resume.empty() ? "" : " (resuming from " + options_.resume + " at iteration " + std::to_string(start_iter_) + ")");
  run_info_.command = options_.command;
  run_info_.started = utc_timestamp();
  run_info_.start_iter = start_iter_;
  run_info_.max_iter = s.max_iter;
  run_info_.machine = describe_machine(threads_);
  run_info_.model = {{"name", name}, {"num_classes", model.zoo.num_classes}, {"params", total},
                     {"trainable", trainable}, {"precision", precision_name(model.precision)}};
  run_info_.data = {{"train", describe_sources(train_sources(data))},
                    {"val", describe_sources(val_sources(data))},
                    {"train_images", train_set_->size()},
                    {"val_images", val_images},
                    {"batch_size", s.batch_size},
                    {"iter_size", s.iter_size},
                    {"ranks", comm_.size()},
                    {"images_per_step", images_per_step()}};
  if (!model.resolved_class_weights.empty()) run_info_.class_weights = model.resolved_class_weights;
}

void Trainer::update_run_info(const std::string& state, int64_t iter) {
  if (!comm_.is_root()) return;
  run_info_.state = state;
  run_info_.iter = iter;
  if (log_) {
    run_info_.images_per_s = log_->images_per_s();
    run_info_.eta_s = state == "running" ? log_->eta_seconds(iter) : 0.0;
  }
  if (state != "running") run_info_.finished = utc_timestamp();
  try {
    write_run_info(options_.out_dir, run_info_);
  } catch (const Error& e) {
    spdlog::warn("{}; the run goes on", e.what());  // a report file never stops training
  }
}

void Trainer::publish_state(const std::string& state, int64_t iter) {
  update_run_info(state, iter);
  if (!comm_.is_root()) return;
  try {
    write_run_report(options_.out_dir);
  } catch (const Error& e) {
    spdlog::warn("{}; the run goes on (fcn report {} rebuilds it)", e.what(), options_.out_dir);
  }
}

void Trainer::warn(int64_t iter, const std::optional<TrainingWarning>& warning) {
  if (warning && log_) log_->warning(iter, warning->kind, warning->message);
}

int64_t Trainer::images_per_step() const {
  return solver_config_.batch_size * solver_config_.iter_size * comm_.size();
}

void Trainer::start_loader() {
  // step s consumes the global samples s*B .. s*B+B-1 (B = images_per_step),
  // rank r the r-th slice of batch_size x iter_size of them, in pass order:
  // the sequence does not depend on how a step is split into passes
  const int64_t k = solver_config_.batch_size * solver_config_.iter_size;
  next_sample_ = start_iter_ * k;  // this rank's samples so far
  const DataConfig& data = options_.config.data;
  const int rank = comm_.rank(), ranks = comm_.size();
  // the callback runs on the loader thread, the only one touching next_sample_
  loader_ = std::make_unique<Prefetcher>(
      *train_set_, [this, k, rank, ranks] { return rank_sample_index(next_sample_++, k, rank, ranks); }, data.seed,
      data.augment, true, data.prefetch);
}

Batch Trainer::next_batch() {
  std::vector<Sample> samples;
  for (int64_t n = 0; n < solver_config_.batch_size; ++n) samples.push_back(loader_->next());
  return stack_samples(samples, static_cast<float>(options_.config.data.ignore_label));
}

double Trainer::accumulate_gradients(int64_t step) {
  // deferred: a layer that writes its gradients whole (conv) is not zeroed first; with an allreduce
  // handing gradient buckets over as layers finish, every gradient is zeroed up front
  const bool deferred = !reducer_;
  graph_->zero_param_grads(deferred);
  double total = 0;
  for (int64_t i = 0; i < solver_config_.iter_size; ++i) {
    const Batch batch = next_batch();
    // dropout draws depend on each image's sample index alone, not on the
    // history or on the batch it is in
    std::vector<uint64_t> seeds;
    for (int64_t g : batch.global_indices) seeds.push_back(derive_seed(solver_config_.seed, static_cast<uint64_t>(g)));
    graph_->seed_images(seeds);
    graph_->reshape({{"data", batch.image.shape()}, {"label", batch.label.shape()}});
    graph_->blob("data") = batch.image;  // copies into the blob's own storage
    graph_->blob("label") = batch.label;
    graph_->forward(Mode::train);
    // the last pass hands each finished bucket of gradients to the allreduce
    if (reducer_ && i + 1 == solver_config_.iter_size) reducer_->begin_last_pass();
    // Single process, iter_size > 1: each pass's gradient is computed into
    // zeroed buffers and then added, so the sum is the one an allreduce over
    // ranks forms (g0 + g1 exactly, not g0 plus g1's partial sums): N ranks
    // x iter_size k follow one process with iter_size N*k.
    const bool separate = !reducer_ && solver_config_.iter_size > 1;
    if (separate && i > 0) graph_->zero_param_grads(deferred);
    graph_->backward();  // adds into the param gradients
    if (separate) add_to_gradient_sum(i == 0);
    total += graph_->loss();
  }
  graph_->seed_images({});
  if (!reducer_) {
    if (solver_config_.iter_size > 1) restore_gradient_sum();
    return total / static_cast<double>(solver_config_.iter_size);
  }
  reducer_->finish();  // the gradients now hold the sums over every rank's samples
  comm_.allreduce_sum(&total, 1);
  return total / static_cast<double>(solver_config_.iter_size * comm_.size());
}

void Trainer::add_to_gradient_sum(bool first) {
  const std::vector<Param*> params = graph_->params();
  gradient_sum_.resize(params.size());
  for (size_t p = 0; p < params.size(); ++p) {
    if (params[p]->frozen()) continue;
    const Tensor& grad = params[p]->grad;
    if (first) {
      gradient_sum_[p] = grad;
      continue;
    }
    cpu::axpy(grad.data(), 1.f, gradient_sum_[p].data(), grad.numel());
  }
}

void Trainer::restore_gradient_sum() {
  const std::vector<Param*> params = graph_->params();
  for (size_t p = 0; p < params.size(); ++p)
    if (!params[p]->frozen()) params[p]->grad = gradient_sum_[p];
}

bool Trainer::apply_update(int64_t step, double loss, double lr) {
  const std::vector<Param*> params = graph_->params();
  // each rank's batch norms moved their running statistics with their own
  // batches: the average keeps them one model (validation, checkpoints)
  if (comm_.distributed()) average_learned_state(comm_, *graph_);
  if (std::isfinite(loss) && gradients_finite(params)) {
    solver_->step(params, lr);
    return true;
  }
  const std::string what = std::isfinite(loss) ? "a gradient is not finite" : fmt::format("the loss is {}", loss);
  if (solver_config_.on_nan == "stop") {
    const std::string kept = last_checkpoint_.empty() ? "no checkpoint was written yet"
                                                      : "the last good checkpoint is " + last_checkpoint_;
    throw Error("iteration " + std::to_string(step + 1) + ": " + what + "; training stopped (solver.on_nan \"stop\"); " +
                kept + ". A smaller solver.base_lr usually helps; solver.on_nan \"skip\" skips such updates");
  }
  if (log_) log_->break_line();
  spdlog::warn("iteration {}: {}; update skipped (solver.on_nan \"skip\")", step + 1, what);
  return false;
}

Scores Trainer::validate(int64_t iter) {
  if (!val_set_) throw Error("validation needs the val split (solver.test_every > 0)");
  const int64_t count = solver_config_.val_limit > 0
                            ? std::min<int64_t>(solver_config_.val_limit, static_cast<int64_t>(val_set_->size()))
                            : static_cast<int64_t>(val_set_->size());
  const DataConfig& data = options_.config.data;
  // each rank scores its share of the images; the matrices are summed
  const auto [begin, end] = rank_share(count, comm_.rank(), comm_.size());
  std::vector<Image> images, truths, predictions;
  const auto keep_for_grid = [&](int64_t position, const Sample& sample, const Image& truth, const Image& prediction) {
    if (position >= kGridRows || !comm_.is_root()) return;
    images.push_back(tensor_to_image(sample.image, data));
    truths.push_back(truth);
    predictions.push_back(prediction);
  };
  ConfusionMatrix matrix = evaluate_split(
      *val_set_, data, options_.config.model.zoo.num_classes,
      [this](const Tensor& image) { return argmax_mask(infer_scores(*graph_, image)); }, begin, end,
      keep_for_grid);
  if (comm_.distributed()) {
    std::vector<int64_t> counts = matrix.raw_counts();
    comm_.allreduce_sum(counts.data(), counts.size());
    matrix.set_raw_counts(counts);
  }
  const Scores scores = compute_scores(matrix, resolve_class_names(data, options_.config.model.zoo.num_classes));
  last_validated_iter_ = iter;
  if (!comm_.is_root()) return scores;
  std::vector<GridRow> rows;
  for (size_t i = 0; i < images.size(); ++i) rows.push_back({&images[i], &truths[i], &predictions[i]});
  write_image(options_.out_dir + "/val_samples.png", sample_grid(rows));
  log_->validation(iter, scores, matrix);
  warn(iter, monitor_->after_validation(iter, scores));
  publish_state("running", iter);
  return scores;
}

std::string Trainer::save_checkpoint(int64_t iter, double lr) {
  const std::string path = options_.out_dir + "/checkpoints/" + checkpoint_filename(iter);
  if (!comm_.is_root()) {  // rank 0 writes; the others only keep the bookkeeping
    last_checkpoint_ = path;
    last_saved_iter_ = iter;
    return path;
  }
  try {
    fcn::save_checkpoint(path, *graph_, solver_.get(), {iter, lr, config_hash_, solver_config_.seed});
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "; training stopped at iteration " + std::to_string(iter) +
                (last_checkpoint_.empty() ? "" : "; the last good checkpoint is " + last_checkpoint_));
  }
  log_->break_line();
  spdlog::info("saved {}", path);
  last_checkpoint_ = path;
  last_saved_iter_ = iter;
  return path;
}

std::string Trainer::resume_command(const std::string& checkpoint) const {
  const std::string& dir = options_.out_dir;
  const std::string launcher = comm_.distributed() ? "mpirun -np " + std::to_string(comm_.size()) + " " : "";
  return launcher + "fcn train --config " + dir + "/config.json --out " + dir + " --resume " + checkpoint;
}

void Trainer::after_step(int64_t iter, double lr, TrainResult& result) {
  if (solver_config_.snapshot_every > 0 && iter % solver_config_.snapshot_every == 0)
    result.checkpoint = save_checkpoint(iter, lr);
  if (solver_config_.test_every > 0 && iter % solver_config_.test_every == 0) {
    validate(iter);
    if (log_) log_->write_curves();
  }
}

void Trainer::finish(double lr, TrainResult& result) {
  const int64_t iter = result.iter;
  if (last_saved_iter_ != iter) result.checkpoint = save_checkpoint(iter, lr);
  if (solver_config_.test_every > 0 && last_validated_iter_ != iter) validate(iter);
  result.final_weights = options_.out_dir + "/final.safetensors";
  // rank 0 writes the weights for all: they must be every rank's
  if (comm_.distributed())
    check_same_params(comm_, *graph_, "the ranks' weights differ after training (running statistics included)");
  if (reducer_ && reducer_->stats().steps > 0) {
    const ReducerStats& st = reducer_->stats();
    const double steps = static_cast<double>(st.steps);
    spdlog::info("allreduce per step: {:.1f} ms summing {:.1f} MiB, {:.1f} ms of it waited for after backward{}",
                 1e3 * st.reduce_seconds / steps, reducer_->total_bytes() / 1048576.0, 1e3 * st.wait_seconds / steps,
                 reducer_->overlap() ? "" : " (overlap off)");
  }
  if (!comm_.is_root()) return;
  fcn::save_checkpoint(result.final_weights, *graph_, nullptr, {iter, lr, config_hash_, solver_config_.seed});
  log_->write_curves();
  publish_state("finished", iter);
  spdlog::info("done: {} iterations; final weights {}", iter, result.final_weights);
}

void Trainer::train_step(int64_t step, double lr, TrainResult& result) {
  const int64_t iter = step + 1;
  // diagnostics on the steps the log records (rank 0): ReLU zeros during
  // forward, gradient norms before the update, update ratios after it
  const bool diagnose = log_ && log_->logs(iter);
  std::optional<ReluZeroCounter> relu_zeros;
  if (diagnose) relu_zeros.emplace(*graph_);
  result.loss = accumulate_gradients(step);
  StepDiagnostics diagnostics;
  if (diagnose) {
    diagnostics.relu_zero = relu_zeros->zero_fractions();
    const double samples = static_cast<double>(solver_config_.iter_size * comm_.size());
    diagnostics.grad_norm = gradient_norms(graph_->params(), 1.0 / samples);
  }
  const bool updated = apply_update(step, result.loss, lr);
  result.iter = completed_iter_ = iter;
  if (!log_) return;
  if (diagnose && updated) diagnostics.update_ratio = update_ratios(graph_->params(), solver_->momentum());
  const double logged_loss = log_->step(iter, result.loss, lr, diagnose ? diagnostics.to_json() : nlohmann::json());
  if (!diagnose) return;
  warn(iter, monitor_->after_logged_loss(iter, logged_loss));
  warn(iter, monitor_->after_diagnostics(iter, diagnostics, lr));
}

TrainResult Trainer::run() {
  // the run is over when run() returns or throws: its directory is free for
  // the next one (a resume in the same process, say)
  struct ReleaseRunDirectory {
    std::unique_ptr<RunDirectory>& run_dir;
    ~ReleaseRunDirectory() { run_dir.reset(); }
  } release{run_dir_};
  StopSignals signals(options_.handle_signals);
  try {
    return run_steps();
  } catch (...) {
    publish_state("failed", completed_iter_);
    throw;
  }
}

TrainResult Trainer::run_steps() {
  TrainResult result;
  result.iter = start_iter_;
  result.checkpoint = last_checkpoint_;
  double lr = solver_->learning_rate(std::max<int64_t>(0, start_iter_ - 1));
  for (int64_t step = start_iter_; step < solver_config_.max_iter; ++step) {
    lr = solver_->learning_rate(step);
    train_step(step, lr, result);
    after_step(result.iter, lr, result);
    if (options_.on_step) options_.on_step(result.iter, result.loss, log_ ? log_->eta_seconds(result.iter) : 0.0);
    // the ranks stop together, after the same step, when any one was signalled
    const int stop_signal = comm_.distributed() ? static_cast<int>(comm_.allreduce_max(pending_stop_signal()))
                                                : pending_stop_signal();
    if (stop_signal == 0 || result.iter == solver_config_.max_iter) continue;
    result.stop_signal = stop_signal;
    clear_stop_signal();
    if (last_saved_iter_ != result.iter) result.checkpoint = save_checkpoint(result.iter, lr);
    if (!log_) return result;
    log_->write_curves();
    publish_state("stopped", result.iter);
    log_->break_line();
    spdlog::warn("stopped by {} after iteration {}; resume with:\n  {}", signal_name(result.stop_signal), result.iter,
                 resume_command(result.checkpoint));
    return result;
  }
  finish(lr, result);
  clear_stop_signal();  // a signal during the last step: the run finished anyway
  return result;
}

}  // namespace fcn
