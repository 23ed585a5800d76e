/* engine.c - weights, devices and pixels of the GIMP plug-in: everything
 * between a GimpDrawable and libmaskdcpt (maskdcpt-gimp.h). */

#include "config.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "maskdcpt-gimp.h"

#define DEFAULT_WEIGHTS MASKDCPT_DATADIR "/maskdcpt/default.safetensors"
#define QUALITY_WEIGHTS MASKDCPT_DATADIR "/maskdcpt/quality.safetensors"

G_DEFINE_QUARK (maskdcpt-gimp-error-quark, mdg_error)

/* ----------------------------------------------------------------- classes */

/* Labels of the default class list (degrade/degrade.h, `maskdcpt degrade
 * --list`); the same strings as the GEGL op, so one translation serves both. */
static const struct
{
  const gchar *name;
  const gchar *label;
} class_labels[] =
{
  { "clean",            N_("None (clean photo)") },
  { "noise",            N_("Noise") },
  { "gaussian-blur",    N_("Gaussian blur") },
  { "motion-blur",      N_("Motion blur") },
  { "defocus-blur",     N_("Defocus blur") },
  { "jpeg",             N_("JPEG artifacts") },
  { "haze",             N_("Haze") },
  { "rain",             N_("Rain") },
  { "low-light",        N_("Low light") },
  { "low-resolution",   N_("Low resolution") },
  { "mixed-realesrgan", N_("Mixed (blur, noise, JPEG)") },
  { "mixed-lowlight",   N_("Mixed (night shot)") },
};

const gchar *
mdg_class_label (const gchar *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (class_labels); i++)
    if (strcmp (class_labels[i].name, name) == 0)
      return _(class_labels[i].label);
  return name;
}

gint
mdg_class_index (const MdgModel  *model,
                 const gchar     *degradation,
                 GError         **error)
{
  gint index;

  if (! degradation || ! degradation[0] || strcmp (degradation, MDG_AUTO) == 0)
    return MASKDCPT_CLASS_AUTO;

  index = maskdcpt_model_class_index (model->model, degradation);
  if (index < 0)
    {
      g_autoptr (GString) names = g_string_new (MDG_AUTO);
      gint                n     = maskdcpt_model_num_classes (model->model);

      for (gint i = 0; i < n; i++)
        g_string_append_printf (names, ", %s", maskdcpt_model_class_name (model->model, i));
      g_set_error (error, MDG_ERROR, MDG_ERROR_CLASS,
                   _("Unknown degradation '%s': the weights file '%s' knows %s."),
                   degradation, model->path, names->str);
      return -2;
    }
  return index;
}

/* ----------------------------------------------------------------- weights */

MdgModel *
mdg_model_load (GFile       *weights,
                const gchar *network,
                GError     **error)
{
  const gchar      *env  = g_getenv ("MASKDCPT_WEIGHTS");
  g_autofree gchar *path = weights ? g_file_get_path (weights) : NULL;
  gboolean          from_env = FALSE;
  maskdcpt_model   *model = NULL;
  maskdcpt_error    err;
  const gchar      *provenance;
  MdgModel         *result;

  if (! path || ! path[0])
    {
      g_clear_pointer (&path, g_free);
      if (env && env[0])
        {
          path     = g_strdup (env);
          from_env = TRUE;
        }
      else
        {
          path = g_strdup (g_strcmp0 (network, "quality") == 0 ? QUALITY_WEIGHTS
                                                               : DEFAULT_WEIGHTS);
          if (! g_file_test (path, G_FILE_TEST_EXISTS))
            {
              g_set_error (error, MDG_ERROR, MDG_ERROR_NO_WEIGHTS,
                           _("No weights file: the shipped weights (%s) are not "
                             "installed. Choose a weights file (.safetensors) in "
                             "the dialog, pass one as the 'weights' argument, or "
                             "set $MASKDCPT_WEIGHTS. The image was not changed."),
                           path);
              return NULL;
            }
        }
    }

  if (! g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, MDG_ERROR, MDG_ERROR_WEIGHTS,
                   from_env ?
                   _("The weights file '%s' named by $MASKDCPT_WEIGHTS does not "
                     "exist. The image was not changed.") :
                   _("The weights file '%s' does not exist. The image was not "
                     "changed."),
                   path);
      return NULL;
    }

  if (maskdcpt_model_load (path, &model, &err) != MASKDCPT_OK)
    {
      g_set_error (error, MDG_ERROR, MDG_ERROR_WEIGHTS,
                   _("Cannot use the weights file '%s': %s. The image was not "
                     "changed."),
                   path, err.message);
      return NULL;
    }

  result        = g_new0 (MdgModel, 1);
  result->model = model;
  result->path  = g_steal_pointer (&path);
  provenance    = maskdcpt_model_metadata (model, "provenance");
  result->untrained = provenance && strstr (provenance, "\"random-init\"") != NULL;
  return result;
}

void
mdg_model_free (MdgModel *model)
{
  if (! model)
    return;
  maskdcpt_model_free (model->model);
  g_free (model->path);
  g_free (model);
}

/* ----------------------------------------------------------------- devices */

static maskdcpt_device
parse_device (const gchar *device)
{
  if (g_strcmp0 (device, "cpu") == 0)
    return MASKDCPT_DEVICE_CPU;
  if (g_strcmp0 (device, "cuda") == 0)
    return MASKDCPT_DEVICE_CUDA;
  return MASKDCPT_DEVICE_AUTO;
}

static void
append_note (gchar       **note,
             const gchar  *text)
{
  gchar *joined;

  if (! note)
    return;
  joined = *note ? g_strconcat (*note, " ", text, NULL) : g_strdup (text);
  g_free (*note);
  *note = joined;
}

maskdcpt_context *
mdg_context_new (const MdgModel  *model,
                 const gchar     *device,
                 gchar          **note,
                 GError         **error)
{
  maskdcpt_context *ctx = NULL;
  maskdcpt_error    err;

  if (maskdcpt_context_new (model->model, &ctx, &err) != MASKDCPT_OK)
    {
      g_set_error (error, MDG_ERROR,
                   err.code == MASKDCPT_ERROR_OUT_OF_MEMORY ? MDG_ERROR_MEMORY : MDG_ERROR_FAILED,
                   "%s", err.message);
      return NULL;
    }

  if (maskdcpt_context_set_device (ctx, parse_device (device), &err) != MASKDCPT_OK)
    {
      g_autofree gchar *text =
        g_strdup_printf (_("The GPU could not be used (%s); running on the CPU instead."),
                         err.message);

      append_note (note, text);
      maskdcpt_context_set_device (ctx, MASKDCPT_DEVICE_CPU, NULL);
    }
  return ctx;
}

/* ------------------------------------------------------------------ pixels */

const Babl *
mdg_drawable_format (GimpDrawable *drawable,
                     gint         *channels)
{
  gboolean     alpha = gimp_drawable_has_alpha (drawable);
  gboolean     grey  = gimp_drawable_is_gray (drawable);
  const gchar *name;

  if (grey)
    name = alpha ? "Y'A float" : "Y' float";
  else
    name = alpha ? "R'G'B'A float" : "R'G'B' float";
  if (channels)
    *channels = (grey ? 1 : 3) + (alpha ? 1 : 0);
  return babl_format_with_space (name, gimp_drawable_get_format (drawable));
}

gboolean
mdg_pixels_read (GimpDrawable  *drawable,
                 gint           x,
                 gint           y,
                 gint           width,
                 gint           height,
                 MdgPixels     *out,
                 GError       **error)
{
  const Babl           *format = mdg_drawable_format (drawable, &out->channels);
  g_autoptr (GeglBuffer) buffer = NULL;

  out->x      = x;
  out->y      = y;
  out->width  = width;
  out->height = height;
  out->data   = g_try_new (gfloat, (gsize) width * height * out->channels);
  if (! out->data)
    {
      g_set_error (error, MDG_ERROR, MDG_ERROR_MEMORY,
                   _("Not enough memory for a %d × %d image. The image was not changed."),
                   width, height);
      return FALSE;
    }
  buffer = gimp_drawable_get_buffer (drawable);
  gegl_buffer_get (buffer, GEGL_RECTANGLE (x, y, width, height), 1.0, format,
                   out->data, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  return TRUE;
}

void
mdg_pixels_clear (MdgPixels *pixels)
{
  g_clear_pointer (&pixels->data, g_free);
}

gboolean
mdg_drawable_region (GimpDrawable  *drawable,
                     GeglRectangle *read,
                     GeglRectangle *write)
{
  gint x, y, w, h;
  gint lw = gimp_drawable_get_width (drawable);
  gint lh = gimp_drawable_get_height (drawable);

  if (! gimp_drawable_mask_intersect (drawable, &x, &y, &w, &h))
    return FALSE;

  *write = *GEGL_RECTANGLE (x, y, w, h);
  if (w == lw && h == lh)
    *read = *write;
  else
    gegl_rectangle_intersect (read,
                              GEGL_RECTANGLE (x - MDG_CONTEXT, y - MDG_CONTEXT,
                                              w + 2 * MDG_CONTEXT, h + 2 * MDG_CONTEXT),
                              GEGL_RECTANGLE (0, 0, lw, lh));
  return TRUE;
}

/* --------------------------------------------------------------------- run */

/* One restoration on `ctx`: the given probabilities, or the class. */
static maskdcpt_status
run_once (const MdgModel       *model,
          maskdcpt_context     *ctx,
          const maskdcpt_image *in,
          const maskdcpt_image *out,
          gint                  class_index,
          const gfloat         *given,
          gfloat                strength,
          maskdcpt_error       *err)
{
  if (given)
    return maskdcpt_restore_with_probabilities (ctx, in, out, given,
                                                maskdcpt_model_num_classes (model->model),
                                                strength, err);
  return maskdcpt_restore (ctx, in, out, class_index, strength, NULL, err);
}

gboolean
mdg_run (const MdgModel       *model,
         const gchar          *device,
         const maskdcpt_image *in,
         const maskdcpt_image *out,
         gint                  class_index,
         const gfloat         *given,
         gfloat                strength,
         maskdcpt_progress_fn  progress,
         gpointer              progress_data,
         gchar               **note,
         GError              **error)
{
  maskdcpt_context *ctx;
  maskdcpt_error    err;
  maskdcpt_status   status;

  ctx = mdg_context_new (model, device, note, error);
  if (! ctx)
    return FALSE;
  maskdcpt_context_set_progress (ctx, progress, progress_data);
  status = run_once (model, ctx, in, out, class_index, given, strength, &err);

  if (status == MASKDCPT_ERROR_DEVICE && parse_device (device) != MASKDCPT_DEVICE_CPU)
    {
      g_autofree gchar *text =
        g_strdup_printf (_("The GPU failed (%s); running on the CPU instead."), err.message);

      append_note (note, text);
      maskdcpt_context_free (ctx);
      ctx = mdg_context_new (model, "cpu", note, error);
      if (! ctx)
        return FALSE;
      maskdcpt_context_set_progress (ctx, progress, progress_data);
      status = run_once (model, ctx, in, out, class_index, given, strength, &err);
    }
  maskdcpt_context_free (ctx);

  switch (status)
    {
    case MASKDCPT_OK:
      return TRUE;
    case MASKDCPT_ERROR_CANCELLED:
      g_set_error_literal (error, MDG_ERROR, MDG_ERROR_CANCELLED,
                           _("Cancelled. The image was not changed."));
      return FALSE;
    case MASKDCPT_ERROR_OUT_OF_MEMORY:
      g_set_error (error, MDG_ERROR, MDG_ERROR_MEMORY,
                   _("Not enough memory for a %d × %d image. The image was not changed."),
                   in->width, in->height);
      return FALSE;
    default:
      g_set_error (error, MDG_ERROR, MDG_ERROR_FAILED,
                   _("Restoration failed: %s. The image was not changed."), err.message);
      return FALSE;
    }
}

typedef struct
{
  gdouble last;
  gint64  calls;
  gint64  cancel_after;   /* $MASKDCPT_TEST_CANCEL_AFTER, or -1 */
} Progress;

/* $MASKDCPT_TEST_CANCEL_AFTER=N, for the tests only: after N progress
 * reports, the next one says "cancelled" as gimp_progress_update does when
 * GIMP no longer listens; a batch test has no Cancel button to press. */
static gint64
test_cancel_after (void)
{
  const gchar *env = g_getenv ("MASKDCPT_TEST_CANCEL_AFTER");
  gchar       *end = NULL;
  gint64       n;

  if (! env || ! env[0])
    return -1;
  n = g_ascii_strtoll (env, &end, 10);
  return *end == '\0' && n >= 0 ? n : -1;
}

static int
progress_update (void   *user,
                 double  fraction)
{
  Progress *p = user;

  if (p->cancel_after >= 0 && p->calls++ >= p->cancel_after)
    return 0;
  if (fraction - p->last < 0.005 && fraction < 1.0)
    return 1;
  p->last = fraction;
  /* FALSE: GIMP no longer listens (the user cancelled). */
  return gimp_progress_update (fraction) ? 1 : 0;
}

GimpPDBStatusType
mdg_restore_drawable (GimpDrawable    *drawable,
                      const MdgModel  *model,
                      const gchar     *degradation,
                      gdouble          strength,
                      const gchar     *device,
                      GError         **error)
{
  GimpImage        *image = gimp_item_get_image (GIMP_ITEM (drawable));
  const Babl       *format;
  GeglRectangle     read, write;
  MdgPixels         in = { 0 };
  g_autofree gfloat *restored = NULL;
  g_autofree gchar *note = NULL;
  maskdcpt_image    in_image, out_image;
  gint              class_index, channels;
  Progress          progress = { -1.0, 0, test_cancel_after () };
  gsize             offset;

  class_index = mdg_class_index (model, degradation, error);
  if (class_index == -2)
    return GIMP_PDB_CALLING_ERROR;

  if (! mdg_drawable_region (drawable, &read, &write))
    {
      gimp_message (_("The selection does not touch this layer: nothing to restore."));
      return GIMP_PDB_SUCCESS;
    }

  if (read.width < MDG_MIN_EDGE || read.height < MDG_MIN_EDGE)
    {
      g_set_error (error, MDG_ERROR, MDG_ERROR_TOO_SMALL,
                   _("The layer is too small to restore: %d × %d pixels, the "
                     "network needs at least %d × %d. The image was not changed."),
                   read.width, read.height, MDG_MIN_EDGE, MDG_MIN_EDGE);
      return GIMP_PDB_EXECUTION_ERROR;
    }

  /* out = in + 0 (restored - in) = in: nothing to do, nothing to undo. */
  if (strength <= 0.0)
    return GIMP_PDB_SUCCESS;

  format = mdg_drawable_format (drawable, &channels);
  if (! mdg_pixels_read (drawable, read.x, read.y, read.width, read.height, &in, error))
    return GIMP_PDB_EXECUTION_ERROR;

  restored = g_try_new (gfloat, (gsize) read.width * read.height * channels);
  if (! restored)
    {
      mdg_pixels_clear (&in);
      g_set_error (error, MDG_ERROR, MDG_ERROR_MEMORY,
                   _("Not enough memory for a %d × %d image. The image was not changed."),
                   read.width, read.height);
      return GIMP_PDB_EXECUTION_ERROR;
    }

  in_image  = (maskdcpt_image) { in.data, read.width, read.height, channels,
                                 (size_t) read.width * channels };
  out_image = (maskdcpt_image) { restored, read.width, read.height, channels,
                                 (size_t) read.width * channels };

  gimp_progress_init (_("Restoring (MaskDCPT)"));
  if (! mdg_run (model, device, &in_image, &out_image, class_index, NULL,
                 (gfloat) MIN (strength, 1.0), progress_update, &progress, &note, error))
    {
      mdg_pixels_clear (&in);
      if (note)
        gimp_message (note);
      gimp_progress_end ();
      return g_error_matches (*error, MDG_ERROR, MDG_ERROR_CANCELLED) ?
             GIMP_PDB_CANCEL : GIMP_PDB_EXECUTION_ERROR;
    }
  mdg_pixels_clear (&in);
  if (note)
    gimp_message (note);

  /* Only the selection's rectangle is written, and merging the shadow
   * buffer blends it through the selection mask (feathering included):
   * one undo step. */
  offset = ((gsize) (write.y - read.y) * read.width + (write.x - read.x)) * channels;
  gimp_image_undo_group_start (image);
  {
    g_autoptr (GeglBuffer) shadow = gimp_drawable_get_shadow_buffer (drawable);

    gegl_buffer_set (shadow, &write, 0, format, restored + offset,
                     read.width * channels * sizeof (gfloat));
  }
  gimp_drawable_merge_shadow (drawable, TRUE);
  gimp_drawable_update (drawable, write.x, write.y, write.width, write.height);
  gimp_image_undo_group_end (image);
  gimp_progress_update (1.0);
  gimp_progress_end ();
  return GIMP_PDB_SUCCESS;
}
