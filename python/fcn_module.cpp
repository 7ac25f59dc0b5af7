// The Python module `fcn`, on the public C++ API alone (fcn/fcn.hpp):
//   import fcn
//   model = fcn.Model("run/config.json", "run/final.safetensors")
//   mask = model.predict(bgr)            # HxWx3 uint8 BGR in, HxW uint8 class ids out
//   probs = model.probabilities(bgr)     # KxHxW float32
//   fcn.train("cfg.json", "run", overrides=["solver.max_iter=100"], on_progress=print)
//   scores = fcn.evaluate("run/config.json", "run/final.safetensors")  # fcn eval --json's dict
// fcn's errors raise fcn.Error (a RuntimeError) with the line `fcn` prints.
// Images, masks and probabilities cross as numpy arrays (copied); the GIL
// is released while fcn computes, so Python threads can predict at once
// (on one Model they take turns: see fcn::Model).
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "fcn/fcn.hpp"

namespace py = pybind11;

namespace {

using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// A view of an HxWx3 uint8 array (the API copies it).
cv::Mat bgr_view(const ByteArray& image) {
  if (image.ndim() != 3 || image.shape(2) != 3)
    throw fcn::Error("predict: expected an HxWx3 uint8 BGR array, got " + std::to_string(image.ndim()) +
                     " dimensions" + (image.ndim() == 3 ? " with " + std::to_string(image.shape(2)) + " channels" : ""));
  return cv::Mat(static_cast<int>(image.shape(0)), static_cast<int>(image.shape(1)), CV_8UC3,
                 const_cast<uint8_t*>(image.data()));
}

cv::Mat mask_view(const ByteArray& mask) {
  if (mask.ndim() != 2) throw fcn::Error("mask: expected an HxW uint8 array, got " + std::to_string(mask.ndim()) + " dimensions");
  return cv::Mat(static_cast<int>(mask.shape(0)), static_cast<int>(mask.shape(1)), CV_8UC1,
                 const_cast<uint8_t*>(mask.data()));
}

py::array_t<uint8_t> to_array(const cv::Mat& mat) {
  std::vector<py::ssize_t> shape{mat.rows, mat.cols};
  if (mat.channels() > 1) shape.push_back(mat.channels());
  py::array_t<uint8_t> array(shape);
  const size_t row = static_cast<size_t>(mat.cols) * mat.channels();
  for (int y = 0; y < mat.rows; ++y) std::memcpy(array.mutable_data() + y * row, mat.ptr(y), row);
  return array;
}

fcn::ModelOptions model_options(const std::vector<std::string>& overrides, int64_t max_memory, int64_t tile,
                                bool tta_flip, const std::vector<double>& tta_scales, int threads) {
  fcn::ModelOptions options;
  options.overrides = overrides;
  options.max_memory = max_memory;
  options.tile = tile;
  options.tta_flip = tta_flip;
  options.tta_scales = tta_scales;
  options.threads = threads;
  return options;
}

py::dict summary_dict(const fcn::TrainSummary& s) {
  py::dict d;
  d["iterations"] = s.iterations;
  d["stopped"] = s.stopped;
  d["stop_signal"] = s.stop_signal;
  d["checkpoint"] = s.checkpoint;
  d["final_weights"] = s.final_weights;
  d["loss"] = s.loss;
  return d;
}

}  // namespace

PYBIND11_MODULE(fcn, m) {
  m.doc() = "fcn: Fully Convolutional Networks for semantic segmentation (the C++ API of fcn/fcn.hpp)";
  m.attr("__version__") = fcn::version();
  py::register_exception<fcn::Error>(m, "Error", PyExc_RuntimeError);

  py::class_<fcn::Model>(m, "Model", "A trained model: a run's config.json and its weights (.safetensors).")
      .def(py::init([](const std::string& config, const std::string& weights, const std::vector<std::string>& overrides,
                       int64_t max_memory, int64_t tile, bool tta_flip, const std::vector<double>& tta_scales,
                       int threads) {
             return fcn::Model(config, weights, model_options(overrides, max_memory, tile, tta_flip, tta_scales, threads));
           }),
           py::arg("config"), py::arg("weights"), py::arg("overrides") = std::vector<std::string>{},
           py::arg("max_memory") = -1, py::arg("tile") = 0, py::arg("tta_flip") = false,
           py::arg("tta_scales") = std::vector<double>{1.0}, py::arg("threads") = 0)
      .def(
          "predict",
          [](const fcn::Model& model, const ByteArray& image) {
            const cv::Mat view = bgr_view(image);
            cv::Mat mask;
            {
              py::gil_scoped_release release;
              mask = model.predict(view);
            }
            return to_array(mask);
          },
          py::arg("image"), "HxWx3 uint8 BGR -> HxW uint8 mask of class ids (fcn predict's)")
      .def(
          "probabilities",
          [](const fcn::Model& model, const ByteArray& image) {
            const cv::Mat view = bgr_view(image);
            std::vector<cv::Mat> maps;
            {
              py::gil_scoped_release release;
              maps = model.probabilities(view);
            }
            py::array_t<float> out({static_cast<py::ssize_t>(maps.size()), static_cast<py::ssize_t>(view.rows),
                                    static_cast<py::ssize_t>(view.cols)});
            const size_t plane = static_cast<size_t>(view.rows) * view.cols;
            for (size_t k = 0; k < maps.size(); ++k)
              std::memcpy(out.mutable_data() + k * plane, maps[k].ptr<float>(), plane * sizeof(float));
            return out;
          },
          py::arg("image"), "HxWx3 uint8 BGR -> KxHxW float32 class probabilities")
      .def("overlay", [](const fcn::Model& model, const ByteArray& image,
                         const ByteArray& mask) { return to_array(model.overlay(bgr_view(image), mask_view(mask))); })
      .def("colorize", [](const fcn::Model& model, const ByteArray& mask) { return to_array(model.colorize(mask_view(mask))); })
      .def("plan_description", &fcn::Model::plan_description, py::arg("height"), py::arg("width"))
      .def_property_readonly("num_classes", &fcn::Model::num_classes)
      .def_property_readonly("class_names", &fcn::Model::class_names);

  m.def("palette", [] {
    py::array_t<uint8_t> out({256, 3});
    for (int i = 0; i < 256; ++i)
      for (int c = 0; c < 3; ++c) out.mutable_at(i, c) = fcn::palette()[i][c];
    return out;
  }, "VOC's colour map, 256x3 uint8, BGR");
  m.def("write_mask_png", [](const std::string& path, const ByteArray& mask) { fcn::write_mask_png(path, mask_view(mask)); },
        py::arg("path"), py::arg("mask"), "HxW uint8 mask -> palette PNG, as fcn predict --out");

  m.def(
      "train",
      [](const std::string& config, const std::string& out_dir, const std::vector<std::string>& overrides,
         const std::string& resume, const std::string& init_weights, bool overwrite, bool handle_signals,
         const std::function<py::object(py::dict)>& on_progress) {
        fcn::TrainSettings settings;
        settings.overrides = overrides;
        settings.resume = resume;
        settings.init_weights = init_weights;
        settings.overwrite = overwrite;
        settings.handle_signals = handle_signals;
        if (on_progress)
          settings.on_progress = [&on_progress](const fcn::TrainProgress& p) {
            py::gil_scoped_acquire acquire;
            py::dict d;
            d["iteration"] = p.iteration;
            d["max_iter"] = p.max_iter;
            d["loss"] = p.loss;
            d["eta_seconds"] = p.eta_seconds;
            const py::object go_on = on_progress(d);
            return go_on.is_none() || go_on.cast<bool>();  // None (a plain print) goes on
          };
        fcn::TrainSummary summary;
        {
          py::gil_scoped_release release;
          summary = fcn::train(config, out_dir, settings);
        }
        return summary_dict(summary);
      },
      py::arg("config"), py::arg("out_dir"), py::arg("overrides") = std::vector<std::string>{}, py::arg("resume") = "",
      py::arg("init_weights") = "", py::arg("overwrite") = false, py::arg("handle_signals") = true,
      py::arg("on_progress") = nullptr,
      "fcn train --config CONFIG --out OUT_DIR; on_progress(dict(iteration, max_iter, loss, eta_seconds)) after each\n"
      "iteration, returning False stops the run as Ctrl-C does. Returns a dict (iterations, stopped, checkpoint, ...).");

  m.def(
      "evaluate",
      [](const std::string& config, const std::string& weights, const std::string& split,
         const std::vector<std::string>& overrides, int64_t max_memory, int64_t tile, bool tta_flip,
         const std::vector<double>& tta_scales, int threads) {
        fcn::EvalSettings settings;
        settings.model = model_options(overrides, max_memory, tile, tta_flip, tta_scales, threads);
        settings.split = split;
        fcn::Evaluation evaluation;
        {
          py::gil_scoped_release release;
          evaluation = fcn::evaluate(config, weights, settings);
        }
        return py::module_::import("json").attr("loads")(evaluation.json);
      },
      py::arg("config"), py::arg("weights"), py::arg("split") = "", py::arg("overrides") = std::vector<std::string>{},
      py::arg("max_memory") = -1, py::arg("tile") = 0, py::arg("tta_flip") = false,
      py::arg("tta_scales") = std::vector<double>{1.0}, py::arg("threads") = 0,
      "fcn eval --config CONFIG --weights WEIGHTS --json: the same dict (mean_iou, pixel_acc, per_class, ...)");
}
