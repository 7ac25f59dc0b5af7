// Placeholders for layer types whose implementation has not landed yet.
// Each layer's own src/layers/<type>.cpp replaces its line here.
#include "fcn/error.hpp"
#include "fcn/layers/factories.hpp"

namespace fcn {

#define FCN_PENDING_LAYER(fn, type) \
  std::unique_ptr<Layer> fn(LayerContext, SpecReader&) { throw Error("layer type '" type "' is not built yet"); }

}  // namespace fcn
