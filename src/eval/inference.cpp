#include "fcn/eval/inference.hpp"

#include "fcn/core/error.hpp"

namespace fcn {


const Tensor& infer_scores(Graph& graph, const Tensor& image, const Tensor* label) {
  if (image.ndim() != 4 || image.n() != 1) throw Error("inference: expected one image [1, C, H, W], got " + shape_str(image.shape()));
  const std::string data_name = graph.image_input();
  std::map<std::string, Shape> shapes = graph.input_shapes(image.h(), image.w());
  shapes[data_name] = image.shape();
  graph.reshape(shapes);
  for (const auto& name : graph.input_names()) {
    Tensor& blob = graph.blob(name);
    if (name == data_name) {
      blob = image;
    } else if (label && label->shape() == blob.shape()) {
      blob = *label;
    } else {
      blob.zero();  // class 0 is valid for every loss: the pass runs, its loss means nothing
    }
  }
  graph.forward_inference();
  const std::string score_name = score_blob_name(graph);
  const Tensor& scores = graph.blob(score_name);
  if (scores.ndim() != 4 || scores.h() != image.h() || scores.w() != image.w())
    throw Error("inference: score blob '" + score_name + "' is " + shape_str(scores.shape()) + " for an image of " +
                std::to_string(image.h()) + "x" + std::to_string(image.w()) +
                " (the graph must crop its scores to the input, as FCN's \"score\" crop does)");
  return scores;
}

Image argmax_mask(const Tensor& scores) {
  const int64_t classes = scores.c(), plane = scores.h() * scores.w();
  if (classes > 256) throw Error("inference: " + std::to_string(classes) + " classes do not fit an 8-bit label map");
  Image mask(static_cast<int>(scores.h()), static_cast<int>(scores.w()), 1);
  std::vector<float> best(scores.data(), scores.data() + plane);  // class 0's scores
  for (int64_t c = 1; c < classes; ++c) {
    const float* s = scores.data() + c * plane;
    for (int64_t i = 0; i < plane; ++i)
      if (s[i] > best[i]) {
        best[i] = s[i];
        mask.pixels[i] = static_cast<uint8_t>(c);
      }
  }
  return mask;
}

Image predict_mask(Graph& graph, const Tensor& image) { return argmax_mask(infer_scores(graph, image)); }

}  // namespace fcn
