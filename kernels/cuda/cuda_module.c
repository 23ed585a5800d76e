/* cuda_module.c - the one exported symbol of libmaskdcpt-cuda.so, found by
 * kernels/cuda_loader.c with dlsym. */
#include "backend.h"

mdc_backend *mdc_cuda_backend_create(int device, int precision, char *msg, size_t msg_size);

__attribute__((visibility("default"))) mdc_backend *
mdc_cuda_module_backend_new(int device, int precision, char *msg, size_t msg_size) {
  return mdc_cuda_backend_create(device, precision, msg, msg_size);
}
