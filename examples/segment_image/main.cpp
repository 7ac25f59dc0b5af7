// segment_image CONFIG WEIGHTS IMAGE MASK.png OVERLAY.png
// The mask (palette PNG, pixel = class id) and an overlay of IMAGE, as
// `fcn predict --out MASK.png --overlay OVERLAY.png` writes them.
#include <fcn/fcn.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s CONFIG WEIGHTS IMAGE MASK.png OVERLAY.png\n", argv[0]);
    return 2;
  }
  try {
    const fcn::Model model(argv[1], argv[2]);
    const cv::Mat image = cv::imread(argv[3], cv::IMREAD_COLOR);
    if (image.empty()) throw fcn::Error(std::string(argv[3]) + ": cannot read the image");
    const cv::Mat mask = model.predict(image);
    fcn::write_mask_png(argv[4], mask);
    cv::imwrite(argv[5], model.overlay(image, mask));
    std::printf("%s: %dx%d, %d classes, fcn %s\n", argv[3], image.cols, image.rows, model.num_classes(),
                fcn::version().c_str());
  } catch (const fcn::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
