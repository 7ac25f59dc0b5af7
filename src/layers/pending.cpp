// Placeholders for layer types whose implementation has not landed yet.
// Each layer's own src/layers/<type>.cpp replaces its line here.
#include "fcn/error.hpp"
#include "fcn/layers/factories.hpp"

namespace fcn {

#define FCN_PENDING_LAYER(fn, type) \
  std::unique_ptr<Layer> fn(LayerContext, SpecReader&) { throw Error("layer type '" type "' is not built yet"); }

FCN_PENDING_LAYER(make_max_pool_layer, "max_pool")
FCN_PENDING_LAYER(make_relu_layer, "relu")
FCN_PENDING_LAYER(make_dropout_layer, "dropout")
FCN_PENDING_LAYER(make_crop_layer, "crop")
FCN_PENDING_LAYER(make_sum_layer, "sum")
FCN_PENDING_LAYER(make_scale_layer, "scale")
FCN_PENDING_LAYER(make_softmax_loss_layer, "softmax_loss")

}  // namespace fcn
