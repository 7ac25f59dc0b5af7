#pragma once
// Caffe models as fcn models: a .caffemodel (Caffe's binary NetParameter,
// in the current `layer` layout with string types or the V1 `layers` layout
// with enum types) becomes an explicit fcn graph plus weights under fcn's
// param names (`conv1_1.weight`, ...). Layer names are kept, so the
// reference's VOC nets map one to one onto fcn's model zoo.
//
// Translation: Convolution, Deconvolution, Pooling (MAX; Caffe rounds up,
// fcn's ceil mode), ReLU, Dropout, Crop, Eltwise (SUM), Scale (one value),
// Split (an alias), InnerProduct (a kxk convolution over its input, the
// reference's "net surgery": VGG16's fc6 4096x25088 becomes 4096x512x7x7).
// Data layers become the graph inputs `data` and `label`; SoftmaxWithLoss
// becomes fcn's softmax_loss; Softmax, Accuracy and other losses are dropped.
//
// The file is read layer by layer (each layer's blobs are converted and its
// message freed before the next is parsed), so memory stays near the size
// of the weights; any file size the filesystem allows is read.
#include <map>
#include <string>
#include <vector>

#include "fcn/core/spec_reader.hpp"
#include "fcn/core/tensor.hpp"

namespace fcn {

struct CaffeImport {
  json graph;                             // {"inputs", "layers"}: an fcn graph spec
  int64_t num_classes = 0;                // channels of the score blob; 0 when over 255
  std::map<std::string, Tensor> weights;  // fcn param names
  std::vector<std::string> dropped;       // "name (Type)" of the layers left out
  std::string net_name;
};

// `deploy` (a text NetParameter, optional) gives the structure when the
// caffemodel lacks it; the blobs then come from the caffemodel by layer name.
// Errors name the file and, for a malformed file, the byte offset.
CaffeImport import_caffe(const std::string& caffemodel, const std::string& deploy = "");

// The config.json of an import: the explicit graph, num_classes and a data
// section with the reference's mean (BGR 104.00698793, 116.66876762,
// 122.67891434), SBD train and VOC seg11valid as data.train and data.val.
json caffe_import_config(const CaffeImport& imported);

// Writes DIR/config.json and DIR/weights.safetensors (creating DIR);
// refuses when either exists.
void write_caffe_import(const CaffeImport& imported, const std::string& dir);

}  // namespace fcn
