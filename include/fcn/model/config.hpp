#pragma once
// A run's configuration: {"model", "data", "solver", "init"}. Every key is
// validated with its JSON path ("did you mean" for near misses); --set
// overrides apply before validation. to_json() gives back a file that is
// itself a valid config with the same keys.
#include <string>
#include <vector>

#include "fcn/core/precision.hpp"
#include "fcn/data/dataset.hpp"
#include "fcn/model/model_zoo.hpp"
#include "fcn/core/spec_reader.hpp"

namespace fcn {

struct ModelConfig {
  ModelSpec zoo;      // used when `graph` is null
  json graph;         // an explicit graph spec instead of an arch
  // model.class_weights as given: null, a list of num_classes weights, or
  // "median_frequency" (computed by training from the training labels).
  json class_weights;
  // The weights the loss layers get (the list, or what training computed for
  // "median_frequency"); empty: every class weighs 1.
  std::vector<double> resolved_class_weights;
  // model.precision: what the convolutions compute in (fcn/core/precision.hpp)
  Precision precision = Precision::fp32;
  bool median_frequency() const { return class_weights.is_string(); }
  json to_json() const;
};

struct SolverConfig {
  double base_lr = 1e-10;
  std::string lr_policy = "fixed";  // fixed | step | multistep | poly | inv
  double gamma = 0.1;               // step, multistep, inv
  int64_t stepsize = 0;             // step
  std::vector<int64_t> stepvalues;  // multistep
  double power = 1.0;               // poly, inv
  double momentum = 0.99;
  double weight_decay = 0.0005;
  // images per forward pass; a step is iter_size passes on each rank, so
  // batch_size x iter_size x ranks images (padded to the batch's largest
  // size: data/batch.hpp)
  int64_t batch_size = 1;
  int64_t iter_size = 1;
  int64_t max_iter = 100000;
  int64_t snapshot_every = 4000;  // 0 = off
  int64_t test_every = 4000;      // 0 = off
  int64_t display_every = 20;     // 0 = off
  int64_t val_limit = 0;          // validate on the first N images only (0 = all)
  int threads = 0;                // 0 = all cores
  uint64_t seed = 1337;
  std::string on_nan = "stop";    // stop | skip
  double allreduce_bucket_mb = 25;  // data-parallel gradient bucket size
  // training_monitor.hpp: the loss-plateau window (iterations; 0 = off) and
  // the sane band of the median update/weight ratio
  int64_t plateau_window = 2000;
  std::vector<double> update_ratio_band = {1e-5, 3e-2};
  json to_json() const;
};

struct InitConfig {
  std::string weights;  // copy matching params from this file before training
  json to_json() const;
};

struct Config {
  ModelConfig model;
  DataConfig data;
  SolverConfig solver;
  InitConfig init;
  json to_json() const;
};

// Applies "a.b.c=V" overrides (V parsed as JSON, else a string); errors name
// the override. Creates missing intermediate objects.
void apply_overrides(json& config, const std::vector<std::string>& overrides);
// Reads, overrides and validates; `source` names the file in errors.
Config parse_config(const json& config, const std::string& source);
Config load_config(const std::string& filename, const std::vector<std::string>& overrides);
// Only the model section (forward, describe, bench never need data or init).
ModelConfig parse_model_config(const json& config, const std::string& source);
// The sections one by one (parse_config assembles them).
ModelConfig parse_model_section(SpecReader reader);
SolverConfig parse_solver_section(SpecReader reader);
InitConfig parse_init_section(SpecReader reader);
// The "data" section (every key validated with its path) and its JSON form.
DataConfig parse_data_config(SpecReader& reader);
json data_config_to_json(const DataConfig& config);
// The graph spec for a model: the explicit graph or the zoo's, with
// resolved_class_weights on every softmax_loss layer.
json model_graph_spec(const ModelConfig& model);

}  // namespace fcn
