#pragma once
// Caffe models as fcn models: a .caffemodel (Caffe's binary NetParameter,
// in the current `layer` layout with string types or the V1 `layers` layout
// with enum types) becomes an explicit fcn graph plus weights under fcn's
// param names (`conv1_1.weight`, ...). Layer names are kept, so the
// reference's VOC nets map one to one onto fcn's model zoo.
//
// Translation: the importer reads the file (both layouts, V1 upgraded),
// finds the inputs and their shapes (`input` + `input_dim`/`input_shape`, an
// Input layer, data layers: any channel count), aliases Split and in-place
// tops, folds a Scale into the BatchNorm before it, and drops Softmax,
// Accuracy, other losses and TRAIN-only layers. Every other layer goes to
// the mapping its Caffe type is registered with (layers/registry.cpp; each
// layer type's file pair owns it, fcn/core/caffe_layer.hpp): the importer
// builds the mapped layer at the bottoms' shapes (its output shape feeds
// the next layers) and checks the converted blobs against its params.
// Errors are one line naming the file, the layer and the field. libprotobuf
// prints nothing: its log handler is silenced and text errors are collected.
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
