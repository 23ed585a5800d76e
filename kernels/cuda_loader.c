/* cuda_loader.c - finds the CUDA backend module at run time.
 *
 * The module (kernels/cuda, libmaskdcpt-cuda.so) is the only part linked
 * against CUDA, cuBLAS and cuDNN.  Loading it on demand keeps those large
 * libraries out of every process that runs on the CPU, and turns a
 * missing driver or library into a message instead of a failed start. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#ifndef MDC_CUDA_MODULE_PATH
#define MDC_CUDA_MODULE_PATH ""
#endif

/* The variable is set and not "0". */
static int env_set(const char *name) {
  const char *s = getenv(name);
  return s && *s && strcmp(s, "0") != 0;
}

int mdc_cuda_strict_requested(void) { return env_set("MASKDCPT_CUDA_STRICT"); }

int mdc_cuda_precision_requested(void) {
  if (mdc_cuda_strict_requested()) return MDC_CUDA_STRICT_FP32;
  return env_set("MASKDCPT_CUDA_FP16") ? MDC_CUDA_FP16 : MDC_CUDA_TF32;
}

mdc_backend *mdc_backend_cuda_new(int device, int precision, char *msg, size_t msg_size) {
#ifndef MDC_HAVE_CUDA_MODULE
  (void)device, (void)precision;
  snprintf(msg, msg_size, "this build has no CUDA backend");
  return NULL;
#else
  /* The driver first: cheap to look for, and without it nothing else
   * matters (the toolkit's libraries load fine on machines with no GPU). */
  void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!driver) {
    snprintf(msg, msg_size, "no NVIDIA driver (libcuda.so.1 not found)");
    return NULL;
  }
  dlclose(driver);
  const char *path = getenv("MASKDCPT_CUDA_MODULE");
  if (!path || !*path) path = MDC_CUDA_MODULE_PATH;
  /* Kept loaded for the life of the process: backends made from it may
   * outlive this call, and CUDA libraries do not unload cleanly. */
  void *module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!module) {
    const char *why = dlerror();
    snprintf(msg, msg_size, "cannot load the CUDA backend: %s", why ? why : path);
    return NULL;
  }
  mdc_backend_cuda_new_fn create = (mdc_backend_cuda_new_fn)dlsym(module, MDC_CUDA_MODULE_SYMBOL);
  if (!create) {
    snprintf(msg, msg_size, "%s has no %s", path, MDC_CUDA_MODULE_SYMBOL);
    return NULL;
  }
  return create(device, precision, msg, msg_size);
#endif
}
