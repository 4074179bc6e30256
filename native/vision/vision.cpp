#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include "torchsam2_vision.h"

namespace {

int32_t fail(char* err, int32_t errlen, const std::string& msg) {
  if (err && errlen > 0) {
    std::strncpy(err, msg.c_str(), errlen - 1);
    err[errlen - 1] = 0;
  }
  return 1;
}

// Any decoded image (gray, BGR, BGRA, 16-bit) -> packed 8-bit RGB in a malloc'd buffer.
int32_t export_rgb(const cv::Mat& img, uint8_t** data, int32_t* height, int32_t* width) {
  cv::Mat m = img;
  if (m.depth() != CV_8U) {
    double scale = m.depth() == CV_16U ? 1.0 / 257.0 : 1.0;
    m.convertTo(m, CV_8U, scale);
  }
  cv::Mat rgb;
  if (m.channels() == 1) cv::cvtColor(m, rgb, cv::COLOR_GRAY2RGB);
  else if (m.channels() == 4) cv::cvtColor(m, rgb, cv::COLOR_BGRA2RGB);
  else cv::cvtColor(m, rgb, cv::COLOR_BGR2RGB);
  size_t n = static_cast<size_t>(rgb.rows) * rgb.cols * 3;
  auto* buf = static_cast<uint8_t*>(std::malloc(n));
  if (!buf) return 1;
  for (int r = 0; r < rgb.rows; r++) std::memcpy(buf + static_cast<size_t>(r) * rgb.cols * 3, rgb.ptr(r), rgb.cols * 3);
  *data = buf;
  *height = rgb.rows;
  *width = rgb.cols;
  return 0;
}

// A capture plus the frame size promised at open: every frame handed out has exactly that size.
struct VideoReader {
  cv::VideoCapture cap;
  int height = 0, width = 0;
};

}  // namespace

extern "C" {

int32_t tsv_image_read(const char* path, uint8_t** data, int32_t* height, int32_t* width,
                       char* err, int32_t errlen) {
  try {
    cv::Mat img = cv::imread(path, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
    if (img.empty()) return fail(err, errlen, std::string("cannot read image '") + path + "' (missing, unreadable or not an image)");
    if (export_rgb(img, data, height, width)) return fail(err, errlen, "out of memory");
    return 0;
  } catch (const std::exception& e) {
    return fail(err, errlen, std::string("cannot read image '") + path + "': " + e.what());
  }
}

int32_t tsv_image_decode(const uint8_t* buf, int64_t len, uint8_t** data, int32_t* height,
                         int32_t* width, char* err, int32_t errlen) {
  try {
    cv::Mat raw(1, static_cast<int>(len), CV_8U, const_cast<uint8_t*>(buf));
    cv::Mat img = cv::imdecode(raw, cv::IMREAD_UNCHANGED);
    if (img.empty()) return fail(err, errlen, "cannot decode image bytes");
    if (export_rgb(img, data, height, width)) return fail(err, errlen, "out of memory");
    return 0;
  } catch (const std::exception& e) {
    return fail(err, errlen, std::string("cannot decode image: ") + e.what());
  }
}

int32_t tsv_image_write(const char* path, const uint8_t* data, int32_t height, int32_t width,
                        int32_t channels, char* err, int32_t errlen) {
  try {
    if (channels != 1 && channels != 3 && channels != 4) return fail(err, errlen, "channels must be 1, 3 or 4");
    cv::Mat src(height, width, CV_8UC(channels), const_cast<uint8_t*>(data));
    cv::Mat out;
    if (channels == 3) cv::cvtColor(src, out, cv::COLOR_RGB2BGR);
    else if (channels == 4) cv::cvtColor(src, out, cv::COLOR_RGBA2BGRA);
    else out = src;
    if (!cv::imwrite(path, out)) return fail(err, errlen, std::string("cannot write image '") + path + "'");
    return 0;
  } catch (const std::exception& e) {
    return fail(err, errlen, std::string("cannot write image '") + path + "': " + e.what());
  }
}

void tsv_free(void* p) { std::free(p); }

int32_t tsv_video_open(const char* path, void** reader, int32_t* height, int32_t* width,
                       int64_t* frame_count, double* fps, char* err, int32_t errlen) {
  try {
    auto* r = new VideoReader();
    r->cap.open(path);
    if (!r->cap.isOpened()) {
      delete r;
      return fail(err, errlen, std::string("cannot open video '") + path + "'");
    }
    r->height = static_cast<int32_t>(r->cap.get(cv::CAP_PROP_FRAME_HEIGHT));
    r->width = static_cast<int32_t>(r->cap.get(cv::CAP_PROP_FRAME_WIDTH));
    if (r->height <= 0 || r->width <= 0) {
      delete r;
      return fail(err, errlen, std::string("video '") + path + "' reports no frame size");
    }
    *height = r->height;
    *width = r->width;
    *frame_count = static_cast<int64_t>(r->cap.get(cv::CAP_PROP_FRAME_COUNT));
    *fps = r->cap.get(cv::CAP_PROP_FPS);
    *reader = r;
    return 0;
  } catch (const std::exception& e) {
    return fail(err, errlen, std::string("cannot open video '") + path + "': " + e.what());
  }
}

int32_t tsv_video_read(void* reader, uint8_t* dst, int32_t* got, char* err, int32_t errlen) {
  try {
    auto* r = static_cast<VideoReader*>(reader);
    cv::Mat frame;
    if (!r->cap.read(frame) || frame.empty()) {
      *got = 0;
      return 0;
    }
    cv::Mat rgb;
    cv::cvtColor(frame, rgb, frame.channels() == 1 ? cv::COLOR_GRAY2RGB : cv::COLOR_BGR2RGB);
    // A stream whose frame size changes mid-way must not overrun the caller's buffer.
    if (rgb.rows != r->height || rgb.cols != r->width) cv::resize(rgb, rgb, cv::Size(r->width, r->height), 0, 0, cv::INTER_AREA);
    for (int r = 0; r < rgb.rows; r++) std::memcpy(dst + static_cast<size_t>(r) * rgb.cols * 3, rgb.ptr(r), rgb.cols * 3);
    *got = 1;
    return 0;
  } catch (const std::exception& e) {
    return fail(err, errlen, std::string("cannot decode frame: ") + e.what());
  }
}

int32_t tsv_video_seek(void* reader, int64_t frame, char* err, int32_t errlen) {
  try {
    auto* r = static_cast<VideoReader*>(reader);
    if (!r->cap.set(cv::CAP_PROP_POS_FRAMES, static_cast<double>(frame))) return fail(err, errlen, "seek failed");
    return 0;
  } catch (const std::exception& e) {
    return fail(err, errlen, std::string("seek failed: ") + e.what());
  }
}

void tsv_video_close(void* reader) { delete static_cast<VideoReader*>(reader); }

}  // extern "C"
