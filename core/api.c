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
  if (!model || !name) return -1;
  for (int i = 0; i < model->net.arch.num_classes; i++)
    if (strcmp(model->net.arch.class_names[i], name) == 0) return i;
  return -1;
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

void maskdcpt_context_free(maskdcpt_context *ctx) {
  if (!ctx) return;
  mdc_backend_free(ctx->backend);
  free(ctx->work);
  mdc_net_cond_clear(&ctx->cond);
  free(ctx);
}

maskdcpt_status maskdcpt_context_set_device(maskdcpt_context *ctx, maskdcpt_device device,
                                            maskdcpt_error *err) {
  if (!ctx) return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "set_device: NULL context");
  switch (device) {
  case MASKDCPT_DEVICE_AUTO:
    ctx->device = MASKDCPT_DEVICE_CPU;
    snprintf(ctx->device_note, sizeof ctx->device_note,
             "using the CPU: this build has no CUDA backend");
    return MASKDCPT_OK;
  case MASKDCPT_DEVICE_CPU:
    ctx->device = MASKDCPT_DEVICE_CPU;
    ctx->device_note[0] = '\0';
    return MASKDCPT_OK;
  case MASKDCPT_DEVICE_CUDA:
    return mdc_set_error(err, MASKDCPT_ERROR_DEVICE,
                         "CUDA requested, but this build has no CUDA backend");
  }
  return mdc_set_error(err, MASKDCPT_ERROR_INVALID_ARGUMENT, "set_device: unknown device %d",
                       (int)device);
}

const char *maskdcpt_context_device_name(const maskdcpt_context *ctx) {
  if (!ctx) return "";
  if (ctx->backend) return ctx->backend->name;
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
  if (ctx->backend && ctx->backend_threads == ctx->threads && ctx->backend_scalar == ctx->scalar)
    return MASKDCPT_OK;
  mdc_backend_free(ctx->backend);
  ctx->backend = ctx->scalar ? mdc_backend_cpu_scalar_new(ctx->threads)
                             : mdc_backend_cpu_best_new(ctx->threads);
  if (!ctx->backend)
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY, "could not start the CPU backend");
  ctx->backend_threads = ctx->threads;
  ctx->backend_scalar = ctx->scalar;
  return MASKDCPT_OK;
}

maskdcpt_status mdc_context_work(maskdcpt_context *ctx, size_t bytes, maskdcpt_error *err) {
  if (ctx->work_size >= bytes) return MASKDCPT_OK;
  free(ctx->work);
  ctx->work = NULL;
  ctx->work_size = 0;
  /* 64-byte alignment for the vector kernels */
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (posix_memalign(&ctx->work, 64, rounded) != 0) {
    ctx->work = NULL;
    return mdc_set_error(err, MASKDCPT_ERROR_OUT_OF_MEMORY,
                         "out of memory: %zu MiB of working memory for one tile (lower the "
                         "tile size or the memory budget)",
                         bytes >> 20);
  }
  ctx->work_size = rounded;
  return MASKDCPT_OK;
}
