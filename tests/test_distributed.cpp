// Data-parallel pieces that run in one process: the graph's backward hook,
// the per-rank sample order and validation shares, the gradient reducer's
// bucket plan and its pack/sum/unpack path (the single-process communicator
// sums over one rank). The multi-rank runs are tests/cli/mpi_*.sh.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <set>

#include "fcn/core/error.hpp"
#include "fcn/train/distributed.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/eval/metrics.hpp"
#include "gradcheck.hpp"

using namespace fcn;
using fcn::testing::random_tensor;

namespace {

// data -> c1 (conv 3x3) -> r1 -> c2 (conv 1x1) -> fixed (frozen 1x1 conv) -> loss
json small_spec() {
  return {{"inputs", {{"data", {{"channels", 3}}}, {"label", {{"channels", 1}}}}},
          {"layers", json::parse(R"([
    {"name": "c1", "type": "conv", "inputs": ["data"], "num_output": 4, "kernel": 3, "pad": 1, "weight_init": "xavier"},
    {"name": "r1", "type": "relu", "inputs": ["c1"]},
    {"name": "c2", "type": "conv", "inputs": ["r1"], "num_output": 3, "kernel": 1, "weight_init": "xavier"},
    {"name": "fixed", "type": "conv", "inputs": ["c2"], "num_output": 3, "kernel": 1, "bias": false,
     "weight_init": "xavier", "lr_mult": 0},
    {"name": "loss", "type": "softmax_loss", "inputs": ["fixed", "label"], "normalize": "valid"}])")}};
}

// A graph with params initialised and one sample loaded.
std::unique_ptr<Graph> small_graph(uint64_t seed) {
  auto graph = std::make_unique<Graph>(small_spec());
  graph->reshape({{"data", {1, 3, 5, 6}}, {"label", {1, 1, 5, 6}}});
  graph->init_params(seed);
  std::mt19937_64 rng(seed);
  graph->blob("data") = random_tensor({1, 3, 5, 6}, rng, -1, 1, 0.01f);
  Tensor& label = graph->blob("label");
  for (int64_t i = 0; i < label.numel(); ++i) label[i] = static_cast<float>(i % 3);
  return graph;
}

std::map<std::string, std::vector<float>> trainable_grads(Graph& graph) {
  std::map<std::string, std::vector<float>> out;
  for (Param* p : graph.params())
    if (!p->frozen()) out[p->name].assign(p->grad.data(), p->grad.data() + p->grad.numel());
  return out;
}

}  // namespace

TEST_CASE("the backward hook follows each layer's backward in reverse order, with its param grads final") {
  auto graph = small_graph(3);
  std::vector<size_t> order;
  std::map<std::string, std::vector<float>> at_hook;
  graph->set_backward_hook([&](size_t i) {
    order.push_back(i);
    for (Param* p : graph->layers()[i]->params())
      if (!p->frozen()) at_hook[p->name].assign(p->grad.data(), p->grad.data() + p->grad.numel());
  });
  graph->zero_param_grads();
  graph->forward(Mode::train);
  graph->backward();
  // loss, fixed, c2, r1, c1: every layer lies between a trainable param and the loss
  CHECK(order == std::vector<size_t>{4, 3, 2, 1, 0});
  CHECK(at_hook == trainable_grads(*graph));
  CHECK(at_hook.size() == 4);  // c1 and c2 weight + bias; the frozen weight has none

  graph->set_backward_hook(nullptr);
  order.clear();
  graph->backward();
  CHECK(order.empty());
}

TEST_CASE("rank_sample_index: N ranks x iter_size k consume the single-process order") {
  for (int size : {1, 2, 3})
    for (int64_t k : {1, 2, 3}) {
      INFO("size " << size << ", iter_size " << k);
      std::vector<int64_t> seen;
      for (int64_t step = 0; step < 4; ++step)
        for (int rank = 0; rank < size; ++rank)
          for (int64_t i = 0; i < k; ++i) {
            const int64_t g = rank_sample_index(step * k + i, k, rank, size);
            CHECK(g == step * size * k + rank * k + i);
            seen.push_back(g);
          }
      for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == static_cast<int64_t>(i));
    }
  // one process: the identity
  for (int64_t c = 0; c < 10; ++c) CHECK(rank_sample_index(c, 3, 0, 1) == c);
}

TEST_CASE("rank_share splits validation into contiguous blocks that cover everything once") {
  struct Case {
    int64_t count;
    int size;
    std::vector<std::pair<int64_t, int64_t>> shares;
  };
  const std::vector<Case> cases = {
      {4, 1, {{0, 4}}},
      {4, 2, {{0, 2}, {2, 4}}},
      {5, 2, {{0, 3}, {3, 5}}},
      {7, 3, {{0, 3}, {3, 5}, {5, 7}}},
      {1, 3, {{0, 1}, {1, 1}, {1, 1}}},
      {0, 2, {{0, 0}, {0, 0}}},
  };
  for (const Case& c : cases)
    for (int rank = 0; rank < c.size; ++rank) {
      INFO("count " << c.count << ", size " << c.size << ", rank " << rank);
      CHECK(rank_share(c.count, rank, c.size) == c.shares[static_cast<size_t>(rank)]);
    }
}

TEST_CASE("the reducer's buckets hold every trainable param once, in backward order, up to the size limit") {
  auto graph = small_graph(1);
  Communicator& comm = Communicator::world();
  const std::vector<std::string> backward_order = {"c2.weight", "c2.bias", "c1.weight", "c1.bias"};
  SECTION("a tiny limit: one param per bucket") {
    GradientReducer reducer(comm, *graph, 1e-9, true);
    REQUIRE(reducer.buckets().size() == 4);
    for (size_t b = 0; b < 4; ++b) {
      REQUIRE(reducer.buckets()[b].size() == 1);
      CHECK(reducer.buckets()[b][0]->name == backward_order[b]);
    }
  }
  SECTION("a large limit: one bucket") {
    GradientReducer reducer(comm, *graph, 25, true);
    REQUIRE(reducer.buckets().size() == 1);
    std::vector<std::string> names;
    for (const Param* p : reducer.buckets()[0]) names.push_back(p->name);
    CHECK(names == backward_order);
    CHECK(reducer.total_bytes() == (3 * 4 + 3 + 4 * 3 * 3 * 3 + 4) * sizeof(float));
  }
  SECTION("a bucket closes once it reaches the limit") {
    // 56 bytes: c2.weight (48 B) stays open, + c2.bias (12 B) closes; c1.weight (432 B) alone; c1.bias
    GradientReducer reducer(comm, *graph, 56.0 / 1048576.0, true);
    REQUIRE(reducer.buckets().size() == 3);
    CHECK(reducer.buckets()[0].size() == 2);
    CHECK(reducer.buckets()[1].size() == 1);
    CHECK(reducer.buckets()[2].size() == 1);
  }
  SECTION("a param of the bucket size or more goes alone") {
    // 100 bytes: c2.weight + c2.bias (60 B) stay open, c1.weight (432 B) closes them and goes alone
    GradientReducer reducer(comm, *graph, 100.0 / 1048576.0, true);
    REQUIRE(reducer.buckets().size() == 3);
    CHECK(reducer.buckets()[0].size() == 2);
    REQUIRE(reducer.buckets()[1].size() == 1);
    CHECK(reducer.buckets()[1][0]->name == "c1.weight");
    CHECK(reducer.buckets()[2].size() == 1);
  }
}

TEST_CASE("the single-process reducer leaves the accumulated gradients as they were") {
  for (bool overlap : {true, false})
    for (double bucket_mb : {1e-9, 56.0 / 1048576.0, 100.0 / 1048576.0, 25.0}) {
      INFO("overlap " << overlap << ", bucket_mb " << bucket_mb);
      auto expected_graph = small_graph(5);
      auto graph = small_graph(5);
      GradientReducer reducer(Communicator::world(), *graph, bucket_mb, overlap);
      for (Graph* g : {expected_graph.get(), graph.get()}) g->zero_param_grads();
      for (int step = 0; step < 2; ++step) {
        // iter_size 2: only the second pass hands buckets over
        for (int pass = 0; pass < 2; ++pass) {
          for (Graph* g : {expected_graph.get(), graph.get()}) g->forward(Mode::train);
          expected_graph->backward();
          if (pass == 1) reducer.begin_last_pass();
          graph->backward();
        }
        reducer.finish();
        CHECK(trainable_grads(*graph) == trainable_grads(*expected_graph));
      }
      CHECK(reducer.stats().steps == 2);
      CHECK(reducer.stats().wait_seconds >= 0);
    }
}

TEST_CASE("one process without a launcher: rank 0 of 1, collectives are identities") {
  Communicator& comm = Communicator::world();
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);
  CHECK(comm.is_root());
  CHECK_FALSE(comm.distributed());
  std::vector<float> f = {1.5f, -2.f};
  comm.allreduce_sum(f.data(), f.size());
  CHECK(f == std::vector<float>{1.5f, -2.f});
  std::vector<int64_t> n = {7, 9};
  comm.allreduce_sum(n.data(), n.size());
  CHECK(n == std::vector<int64_t>{7, 9});
  CHECK(comm.allreduce_max(4) == 4);
  CHECK(comm.test(comm.start_allreduce_sum(f.data(), f.size())));
  auto graph = small_graph(2);
  CHECK_NOTHROW(check_same_params(comm, *graph));
  // one rank: solver.threads as configured (0 = all cores)
  CHECK(threads_per_rank(0, comm) == 0);
  CHECK(threads_per_rank(3, comm) == 3);
}

TEST_CASE("FCN_ALLREDUCE_OVERLAP turns the overlap off") {
  const char* saved = std::getenv("FCN_ALLREDUCE_OVERLAP");
  const std::string saved_value = saved ? saved : "";
  unsetenv("FCN_ALLREDUCE_OVERLAP");
  CHECK(allreduce_overlap_from_env());
  setenv("FCN_ALLREDUCE_OVERLAP", "0", 1);
  CHECK_FALSE(allreduce_overlap_from_env());
  setenv("FCN_ALLREDUCE_OVERLAP", "1", 1);
  CHECK(allreduce_overlap_from_env());
  for (const char* unknown : {"off", "false", "yes"}) {  // a typo is an error, not a silent default
    setenv("FCN_ALLREDUCE_OVERLAP", unknown, 1);
    CHECK_THROWS_AS(allreduce_overlap_from_env(), Error);
  }
  if (saved) setenv("FCN_ALLREDUCE_OVERLAP", saved_value.c_str(), 1);
  else unsetenv("FCN_ALLREDUCE_OVERLAP");
}

TEST_CASE("confusion matrix raw counts: summing them is merging the matrices") {
  ConfusionMatrix a(3), b(3);
  const std::vector<uint8_t> gt_a = {0, 1, 2, 255, 1}, pred_a = {0, 2, 2, 0, 1};
  const std::vector<uint8_t> gt_b = {2, 2, 0}, pred_b = {1, 2, 0};
  a.add(gt_a.data(), pred_a.data(), gt_a.size());
  b.add(gt_b.data(), pred_b.data(), gt_b.size());
  std::vector<int64_t> sum = a.raw_counts();
  const std::vector<int64_t> other = b.raw_counts();
  REQUIRE(sum.size() == 3 * 3 + 2);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += other[i];
  ConfusionMatrix summed(3);
  summed.set_raw_counts(sum);
  a.merge(b);
  CHECK(summed.raw_counts() == a.raw_counts());
  CHECK(summed.num_images() == 2);
  CHECK(summed.ignored_pixels() == 1);
  CHECK_THROWS(summed.set_raw_counts({1, 2}));
}
