// C ABI over OpenCV for image and video files. Pixels cross as packed RGB (or gray) uint8.
// Returns 0 on success; on failure a message is written to err (always NUL-terminated).
#pragma once
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#define TSV_API __attribute__((visibility("default")))

// Reads an image as RGB. *data is malloc'd (free with tsv_free).
TSV_API int32_t tsv_image_read(const char* path, uint8_t** data, int32_t* height, int32_t* width,
                               char* err, int32_t errlen);
// Decodes an in-memory encoded image (PNG/JPEG/...) as RGB.
TSV_API int32_t tsv_image_decode(const uint8_t* buf, int64_t len, uint8_t** data, int32_t* height,
                                 int32_t* width, char* err, int32_t errlen);
// Writes channels=1 (gray), 3 (RGB) or 4 (RGBA) uint8 pixels; format from the extension.
TSV_API int32_t tsv_image_write(const char* path, const uint8_t* data, int32_t height,
                                int32_t width, int32_t channels, char* err, int32_t errlen);
TSV_API void tsv_free(void* p);

// Video files through videoio. A reader yields RGB frames in order.
TSV_API int32_t tsv_video_open(const char* path, void** reader, int32_t* height, int32_t* width,
                               int64_t* frame_count, double* fps, char* err, int32_t errlen);
// Reads the next frame into dst (height*width*3 bytes); *got = 0 at the end.
TSV_API int32_t tsv_video_read(void* reader, uint8_t* dst, int32_t* got, char* err, int32_t errlen);
TSV_API int32_t tsv_video_seek(void* reader, int64_t frame, char* err, int32_t errlen);
TSV_API void tsv_video_close(void* reader);

#ifdef __cplusplus
}
#endif
