/* api.c - model and context handles of the public API (maskdcpt.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"

/* -------------------------------------------------------------- model */

static maskdcpt_status model_from_weights(mdc_weights *w, maskdcpt_model **out,
                                          maskdcpt_error *err) {
  maskdcpt_model *m = calloc(1, sizeof *m);
  if (!m) return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "out of memory");
  maskdcpt_status st = mdc_net_init(&m->net, w, err);
  if (st != MASKDCPT_OK) {
    free(m);
    return st;
  }
  /* The metadata moves over; the fp32 PyTorch-layout copy is dropped. */
  m->num_metadata = w->num_metadata;
  m->metadata = w->metadata;
  w->num_metadata = 0;
  w->metadata = NULL;
  memcpy(m->auto_focus, w->auto_focus, sizeof m->auto_focus);
  memcpy(m->passes, w->passes, sizeof m->passes);
  *out = m;
  return MASKDCPT_OK;
}

maskdcpt_status maskdcpt_model_load(const char *path, maskdcpt_model **out, maskdcpt_error *err) {
  if (out) *out = NULL;
  if (!path || !out)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "model_load: NULL argument");
  mdc_weights w;
  maskdcpt_status st = mdc_weights_load(path, &w, err);
  if (st != MASKDCPT_OK) return st;
  st = model_from_weights(&w, out, err);
  mdc_weights_clear(&w);
  return st;
}

maskdcpt_status maskdcpt_model_load_memory(const void *data, size_t size, const char *name,
                                           maskdcpt_model **out, maskdcpt_error *err) {
  if (out) *out = NULL;
  if (!data || !out)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "model_load_memory: NULL argument");
  mdc_weights w;
  maskdcpt_status st = mdc_weights_parse(data, size, name ? name : "<memory>", &w, err);
  if (st != MASKDCPT_OK) return st;
  st = model_from_weights(&w, out, err);
  mdc_weights_clear(&w);
  return st;
}

void maskdcpt_model_free(maskdcpt_model *model) {
  if (!model) return;
  mdc_net_clear(&model->net);
  for (int i = 0; i < model->num_metadata; i++) {
    free(model->metadata[i].key);
    free(model->metadata[i].value);
  }
  free(model->metadata);
  free(model);
}

void maskdcpt_model_arch(const maskdcpt_model *model, maskdcpt_arch_info *out) {
  memset(out, 0, sizeof *out);
  if (!model) return;
  const mdc_arch *a = &model->net.arch;
  out->width = a->width;
  out->levels = a->levels;
  for (int l = 0; l < a->levels && l < 8; l++) {
    out->enc_blocks[l] = a->enc_blocks[l];
    out->dec_blocks[l] = a->dec_blocks[l];
  }
  out->middle_blocks = a->middle_blocks;
  out->num_classes = a->num_classes;
  out->cls_hidden = a->cls_hidden;
  out->sca_window = a->sca_window;
  out->norm_eps = a->norm_eps;
  out->num_params = mdc_arch_num_params(a);
  out->macs_per_pixel = mdc_arch_macs_per_pixel(a);
}

int maskdcpt_model_num_classes(const maskdcpt_model *model) {
  return model ? model->net.arch.num_classes : 0;
}

const char *maskdcpt_model_class_name(const maskdcpt_model *model, int index) {
  if (!model || index < 0 || index >= model->net.arch.num_classes) return NULL;
  return model->net.arch.class_names[index];
}

int maskdcpt_model_class_index(const maskdcpt_model *model, const char *name) {
  return model ? mdc_arch_class_index(&model->net.arch, name) : -1;
}

const char *maskdcpt_model_metadata(const maskdcpt_model *model, const char *key) {
  if (!model || !key) return NULL;
  for (int i = 0; i < model->num_metadata; i++)
    if (strcmp(model->metadata[i].key, key) == 0) return model->metadata[i].value;
  return NULL;
}

const char *maskdcpt_model_metadata_key(const maskdcpt_model *model, int index) {
  if (!model || index < 0 || index >= model->num_metadata) return NULL;
  return model->metadata[index].key;
}

/* ------------------------------------------------------------ context */

maskdcpt_status maskdcpt_context_new(const maskdcpt_model *model, maskdcpt_context **out,
                                     maskdcpt_error *err) {
  if (out) *out = NULL;
  if (!model || !out)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "context_new: NULL argument");
  maskdcpt_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx || mdc_net_cond_init(&ctx->cond, &model->net) != MASKDCPT_OK) {
    free(ctx);
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "out of memory");
  }
  ctx->model = model;
  ctx->device = MASKDCPT_DEVICE_AUTO;
  ctx->backend_threads = -1;
  *out = ctx;
  return maskdcpt_context_set_device(ctx, MASKDCPT_DEVICE_AUTO, err);
}

/* Frees what lives in the current backend's memory. */
static void release_backend_memory(maskdcpt_context *ctx) {
  if (ctx->work_owner) mdc_be_free(ctx->work_owner, ctx->work);
  ctx->work = NULL, ctx->work_size = 0, ctx->work_owner = NULL;
  if (ctx->cuda) {
    mdc_be_free(ctx->cuda, ctx->device_net.storage);
    mdc_be_free(ctx->cuda, ctx->device_cond.mixed);
  }
  mdc_net_clear(&ctx->device_net);
  memset(&ctx->device_cond, 0, sizeof ctx->device_cond);
}

static void drop_cuda(maskdcpt_context *ctx) {
  release_backend_memory(ctx);
  if (ctx->backend == ctx->cuda) ctx->backend = NULL;
  mdc_backend_free(ctx->cuda);
  ctx->cuda = NULL;
}

void maskdcpt_context_free(maskdcpt_context *ctx) {
  if (!ctx) return;
  drop_cuda(ctx);
  mdc_backend_free(ctx->backend);
  free(ctx->host_work);
  mdc_net_cond_clear(&ctx->cond);
  free(ctx);
}

maskdcpt_status maskdcpt_context_set_device(maskdcpt_context *ctx, maskdcpt_device device,
                                            maskdcpt_error *err) {
  if (!ctx) return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "set_device: NULL context");
  if (device != MASKDCPT_DEVICE_AUTO && device != MASKDCPT_DEVICE_CPU &&
      device != MASKDCPT_DEVICE_CUDA)
    return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "set_device: unknown device %d",
                         (int)device);
  ctx->device_note[0] = '\0';
  ctx->cuda_failed_over = 0;
  ctx->device_budget = 0;
  if (device == MASKDCPT_DEVICE_CPU) {
    drop_cuda(ctx);
    ctx->device = device;
    return MASKDCPT_OK;
  }
  if (!ctx->cuda) {
    char msg[256];
    ctx->cuda = mdc_backend_cuda_new(0, mdc_cuda_precision_requested(), msg, sizeof msg);
    if (!ctx->cuda) {
      if (device == MASKDCPT_DEVICE_CUDA)
        return mdc_set_error(err, MASKDCPT_ERROR_DEVICE, "CUDA requested, but %s", msg);
      snprintf(ctx->device_note, sizeof ctx->device_note, "using the CPU: %s", msg);
    }
  }
  ctx->device = device;
  return MASKDCPT_OK;
}

int mdc_context_fail_over(maskdcpt_context *ctx, const char *why) {
  if (ctx->device != MASKDCPT_DEVICE_AUTO || !ctx->cuda || ctx->cuda_failed_over) return 0;
  drop_cuda(ctx);
  ctx->cuda_failed_over = 1;
  ctx->device_budget = 0; /* the GPU's shortage says nothing about host memory */
  snprintf(ctx->device_note, sizeof ctx->device_note, "using the CPU: %s", why);
  return 1;
}

const char *maskdcpt_context_device_name(const maskdcpt_context *ctx) {
  if (!ctx) return "";
  if (ctx->backend) return ctx->backend->name;
  if (ctx->cuda && !ctx->scalar) return ctx->cuda->name;
  return ctx->scalar || !mdc_cpu_has_avx2_fma() ? "cpu-scalar" : "cpu-avx2";
}

const char *maskdcpt_context_device_note(const maskdcpt_context *ctx) {
  return ctx ? ctx->device_note : "";
}

void maskdcpt_context_set_threads(maskdcpt_context *ctx, int threads) {
  if (ctx) ctx->threads = threads < 0 ? 0 : threads;
}

void maskdcpt_context_set_tile_size(maskdcpt_context *ctx, int tile_size) {
  if (ctx) ctx->tile_size = tile_size < 0 ? 0 : tile_size;
}

void maskdcpt_context_set_memory_budget(maskdcpt_context *ctx, size_t bytes) {
  if (ctx) ctx->memory_budget = bytes;
}

void maskdcpt_context_set_scalar(maskdcpt_context *ctx, int scalar) {
  if (ctx) ctx->scalar = scalar != 0;
}

void maskdcpt_context_set_progress(maskdcpt_context *ctx, maskdcpt_progress_fn fn, void *user) {
  if (!ctx) return;
  ctx->progress = fn;
  ctx->progress_user = user;
}

maskdcpt_status mdc_context_backend(maskdcpt_context *ctx, maskdcpt_error *err) {
  /* --scalar asks for the CPU reference whatever the device */
  mdc_backend *want = ctx->scalar ? NULL : ctx->cuda;
  if (want) {
    if (ctx->backend != want) {
      release_backend_memory(ctx);
      if (ctx->backend != ctx->cuda) mdc_backend_free(ctx->backend);
      ctx->backend = want;
    }
    return MASKDCPT_OK;
  }
  if (ctx->backend && ctx->backend != ctx->cuda && ctx->backend_threads == ctx->threads &&
      ctx->backend_scalar == ctx->scalar)
    return MASKDCPT_OK;
  if (ctx->work_owner == ctx->backend) release_backend_memory(ctx);
  if (ctx->backend != ctx->cuda) mdc_backend_free(ctx->backend);
  ctx->backend = ctx->scalar ? mdc_backend_cpu_scalar_new(ctx->threads)
                             : mdc_backend_cpu_best_new(ctx->threads);
  if (!ctx->backend)
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "could not start the CPU backend");
  ctx->backend_threads = ctx->threads;
  ctx->backend_scalar = ctx->scalar;
  return MASKDCPT_OK;
}

maskdcpt_status mdc_context_work(maskdcpt_context *ctx, size_t bytes, maskdcpt_error *err) {
  if (ctx->work_owner == ctx->backend && ctx->work_size >= bytes) return MASKDCPT_OK;
  if (ctx->work_owner) mdc_be_free(ctx->work_owner, ctx->work);
  ctx->work = NULL, ctx->work_size = 0, ctx->work_owner = NULL;
  size_t rounded = (bytes + 255) & ~(size_t)255;
  ctx->work = mdc_be_alloc(ctx->backend, rounded);
  if (!ctx->work)
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY,
                         "out of %s memory: %zu MiB of working memory for one tile (lower the "
                         "tile size or the memory budget)",
                         mdc_be_is_device(ctx->backend) ? "GPU" : "host", bytes >> 20);
  ctx->work_size = rounded;
  ctx->work_owner = ctx->backend;
  return MASKDCPT_OK;
}

maskdcpt_status mdc_context_host_work(maskdcpt_context *ctx, size_t bytes, maskdcpt_error *err) {
  if (ctx->host_work_size >= bytes) return MASKDCPT_OK;
  free(ctx->host_work);
  ctx->host_work_size = 0;
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (posix_memalign(&ctx->host_work, 64, rounded) != 0) {
    ctx->host_work = NULL;
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY,
                         "out of memory: %zu MiB for one tile's input and output", bytes >> 20);
  }
  ctx->host_work_size = rounded;
  return MASKDCPT_OK;
}

maskdcpt_status mdc_context_net(maskdcpt_context *ctx, const mdc_net **net,
                                maskdcpt_error *err) {
  const mdc_net *host = &ctx->model->net;
  mdc_backend *be = ctx->backend;
  if (!mdc_be_is_device(be)) {
    *net = host;
    return MASKDCPT_OK;
  }
  if (!ctx->device_net.storage) {
    size_t bytes = (size_t)mdc_arch_num_params(&host->arch) * sizeof(float);
    size_t cond_bytes = (ctx->cond.size ? ctx->cond.size : 1) * sizeof(float);
    float *params = mdc_be_alloc(be, bytes), *mixed = mdc_be_alloc(be, cond_bytes);
    maskdcpt_status st = params && mixed ? mdc_net_rebase(host, params, &ctx->device_net, err)
                                         : mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY,
                                                         "out of GPU memory for the network");
    if (st != MASKDCPT_OK) {
      mdc_be_free(be, params);
      mdc_be_free(be, mixed);
      return st;
    }
    mdc_be_upload(be, params, host->storage, bytes);
    ctx->device_cond.mixed = mixed;
    ctx->device_cond.size = ctx->cond.size;
  }
  *net = &ctx->device_net;
  return MASKDCPT_OK;
}

maskdcpt_status mdc_context_cond(maskdcpt_context *ctx, const float *probs,
                                 const mdc_net_cond **cond, maskdcpt_error *err) {
  const mdc_net *net;
  maskdcpt_status st = mdc_context_net(ctx, &net, err);
  if (st != MASKDCPT_OK) return st;
  mdc_net_cond_set(&ctx->cond, &ctx->model->net, probs);
  if (!mdc_be_is_device(ctx->backend)) {
    *cond = &ctx->cond;
    return MASKDCPT_OK;
  }
  mdc_be_upload(ctx->backend, ctx->device_cond.mixed, ctx->cond.mixed,
                ctx->cond.size * sizeof(float));
  *cond = &ctx->device_cond;
  return MASKDCPT_OK;
}
