/* maskdcpt-restore.c - the GEGL operation maskdcpt:restore (docs/gegl.md).
 *
 * Restores a photo with libmaskdcpt: the network names the damage (auto)
 * or is told which one to undo, and the result is blended with the input
 * by `strength`.  A whole-image filter, like gegl:denoise-dct: it asks for
 * the full input, and the core does the tiling (overlap and blending) and
 * the threading.  Pixels are R'G'B'A float in the input's colour space
 * (R'G'B' without alpha, Y'(A) when grey, so a file keeps its channels);
 * alpha passes through untouched.
 *
 * The model is loaded on first use and kept in a cache keyed by path (one
 * model per file, shared by every node and thread; a file changed on disk
 * is loaded again); each process() call makes its own context.  A missing
 * or broken weights file, a failing device, running out of memory: each
 * gives a warning in the "GEGL" log domain (GIMP shows those) and the image
 * unchanged.
 */

#define G_LOG_DOMAIN    "GEGL"
#define GETTEXT_PACKAGE "maskdcpt"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>

#include "maskdcpt.h"

#ifdef GEGL_PROPERTIES

/* "auto" plus the classes of the default class list (degrade/degrade.h,
 * `maskdcpt degrade --list`), by the same names: the loaded weights file's
 * own list is matched by name at run time. */
enum_start (maskdcpt_op_degradation)
  enum_value (MASKDCPT_OP_AUTO,             "auto",             N_("Auto-detect"))
  enum_value (MASKDCPT_OP_CLEAN,            "clean",            N_("None (clean photo)"))
  enum_value (MASKDCPT_OP_NOISE,            "noise",            N_("Noise"))
  enum_value (MASKDCPT_OP_GAUSSIAN_BLUR,    "gaussian-blur",    N_("Gaussian blur"))
  enum_value (MASKDCPT_OP_MOTION_BLUR,      "motion-blur",      N_("Motion blur"))
  enum_value (MASKDCPT_OP_DEFOCUS_BLUR,     "defocus-blur",     N_("Defocus blur"))
  enum_value (MASKDCPT_OP_JPEG,             "jpeg",             N_("JPEG artifacts"))
  enum_value (MASKDCPT_OP_HAZE,             "haze",             N_("Haze"))
  enum_value (MASKDCPT_OP_RAIN,             "rain",             N_("Rain"))
  enum_value (MASKDCPT_OP_LOW_LIGHT,        "low-light",        N_("Low light"))
  enum_value (MASKDCPT_OP_LOW_RESOLUTION,   "low-resolution",   N_("Low resolution"))
  enum_value (MASKDCPT_OP_MIXED_REALESRGAN, "mixed-realesrgan", N_("Mixed (blur, noise, JPEG)"))
  enum_value (MASKDCPT_OP_MIXED_LOWLIGHT,   "mixed-lowlight",   N_("Mixed (night shot)"))
enum_end (MaskdcptOpDegradation)

enum_start (maskdcpt_op_device)
  enum_value (MASKDCPT_OP_DEVICE_AUTO, "auto", N_("Auto (CUDA if available)"))
  enum_value (MASKDCPT_OP_DEVICE_CPU,  "cpu",  N_("CPU"))
  enum_value (MASKDCPT_OP_DEVICE_CUDA, "cuda", N_("CUDA"))
enum_end (MaskdcptOpDevice)

property_enum (degradation, _("Degradation"),
               MaskdcptOpDegradation, maskdcpt_op_degradation, MASKDCPT_OP_AUTO)
  description (_("The damage to remove. Auto-detect lets the network recognise "
                 "it; any other choice forces that type."))

property_double (strength, _("Strength"), 1.0)
  description (_("How much of the restoration to apply: 0 leaves the image "
                 "unchanged, 1 applies it fully."))
  value_range (0.0, 1.0)
  ui_steps    (0.01, 0.1)

property_file_path (weights, _("Weights file"), "")
  description (_("A maskdcpt weights file (.safetensors), or 'fast' or 'quality' "
                 "for the installed width-16 and width-32 networks. Empty: the "
                 "file named by $MASKDCPT_WEIGHTS, else the installed 'fast' one."))

property_enum (device, _("Device"),
               MaskdcptOpDevice, maskdcpt_op_device, MASKDCPT_OP_DEVICE_AUTO)
  description (_("Where the network runs. Auto uses CUDA when it is built in "
                 "and a GPU is usable, and the CPU otherwise."))

property_int (tile_size, _("Tile size"), 0)
  description (_("Edge of the overlapping tiles the image is restored in, in "
                 "pixels. 0 picks it from the memory budget (1 GiB; on a GPU, "
                 "half its free memory); other values are rounded to the "
                 "network's multiple, at least 32."))
  value_range (0, 16384)
  ui_range    (0, 2048)

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME     maskdcpt_restore
#define GEGL_OP_C_SOURCE maskdcpt-restore.c
#define GEGL_OP_BUNDLE   /* gegl_module_register is ours: it binds the text domain */
#include "gegl-op.h"

#ifndef MASKDCPT_DATADIR
#error "MASKDCPT_DATADIR must name <prefix>/share"
#endif
#ifndef MASKDCPT_LOCALEDIR
#error "MASKDCPT_LOCALEDIR must name <prefix>/share/locale"
#endif

#define DEFAULT_WEIGHTS MASKDCPT_DATADIR "/maskdcpt/default.safetensors"
#define QUALITY_WEIGHTS MASKDCPT_DATADIR "/maskdcpt/quality.safetensors"

/* ------------------------------------------------------------ model cache */

/* One loaded weights file.  `refs` counts the process() calls using it; an
 * entry replaced because its file changed is freed by its last user. */
typedef struct
{
  gchar          *path;
  maskdcpt_model *model;
  dev_t           dev;
  ino_t           ino;
  gint64          size;
  gint64          mtime_ns;
  guint           refs;
  gboolean        stale;
} CachedModel;

static GMutex      cache_mutex;
static GHashTable *cache;   /* path -> CachedModel*, under cache_mutex */

static void
cached_model_free (CachedModel *entry)
{
  maskdcpt_model_free (entry->model);
  g_free (entry->path);
  g_free (entry);
}

/* Once per load, as the command-line tool does: a `maskdcpt init` file
 * changes images but restores nothing. */
static void
warn_if_untrained (const maskdcpt_model *model,
                   const gchar          *path)
{
  const gchar *provenance = maskdcpt_model_metadata (model, "provenance");
  gchar       *note;

  if (! provenance || ! strstr (provenance, "\"random-init\""))
    return;
  note = g_strdup_printf (_("%s holds untrained, random weights: "
                            "results are not restorations"), path);
  g_warning ("maskdcpt:restore: %s", note);
  g_free (note);
}

/* The model for `path`, loaded on first use and again when the file has
 * changed.  NULL with *message set (free with g_free) on failure. */
static CachedModel *
model_acquire (const gchar  *path,
               gchar       **message)
{
  CachedModel   *entry;
  GStatBuf       st;
  maskdcpt_model *model = NULL;
  maskdcpt_error err;

  g_mutex_lock (&cache_mutex);

  if (! cache)
    cache = g_hash_table_new (g_str_hash, g_str_equal);

  if (g_stat (path, &st) != 0)
    {
      gint errsv = errno;

      g_mutex_unlock (&cache_mutex);
      *message = g_strdup_printf (_("cannot read the weights file '%s': %s"),
                                  path, g_strerror (errsv));
      return NULL;
    }

  entry = g_hash_table_lookup (cache, path);
  if (entry &&
      (entry->dev != st.st_dev || entry->ino != st.st_ino ||
       entry->size != (gint64) st.st_size ||
       entry->mtime_ns != (gint64) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec))
    {
      g_hash_table_remove (cache, path);
      entry->stale = TRUE;
      if (entry->refs == 0)
        cached_model_free (entry);
      entry = NULL;
    }

  if (! entry)
    {
      /* Loaded under the lock: callers wanting the same file wait for this
       * load instead of making their own copy. */
      if (maskdcpt_model_load (path, &model, &err) != MASKDCPT_OK)
        {
          g_mutex_unlock (&cache_mutex);
          *message = g_strdup (err.message);
          return NULL;
        }
      entry = g_new0 (CachedModel, 1);
      entry->path     = g_strdup (path);
      entry->model    = model;
      entry->dev      = st.st_dev;
      entry->ino      = st.st_ino;
      entry->size     = st.st_size;
      entry->mtime_ns = (gint64) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
      g_hash_table_insert (cache, entry->path, entry);
      warn_if_untrained (model, path);
    }

  entry->refs++;
  g_mutex_unlock (&cache_mutex);
  return entry;
}

static void
model_release (CachedModel *entry)
{
  g_mutex_lock (&cache_mutex);
  if (--entry->refs == 0 && entry->stale)
    cached_model_free (entry);
  g_mutex_unlock (&cache_mutex);
}

typedef enum
{
  WEIGHTS_FROM_PROPERTY,
  WEIGHTS_FROM_ENVIRONMENT,
  WEIGHTS_FROM_DEFAULT
} WeightsOrigin;

/* The weights file to use: the property (a path, or the name of a shipped
 * network), else $MASKDCPT_WEIGHTS, else the installed default. */
static const gchar *
weights_path (GeglProperties *o,
              WeightsOrigin  *origin)
{
  const gchar *env = g_getenv ("MASKDCPT_WEIGHTS");

  if (o->weights && (! strcmp (o->weights, "fast") || ! strcmp (o->weights, "quality")))
    {
      *origin = WEIGHTS_FROM_DEFAULT;
      return o->weights[0] == 'f' ? DEFAULT_WEIGHTS : QUALITY_WEIGHTS;
    }
  if (o->weights && o->weights[0])
    {
      *origin = WEIGHTS_FROM_PROPERTY;
      return o->weights;
    }
  if (env && env[0])
    {
      *origin = WEIGHTS_FROM_ENVIRONMENT;
      return env;
    }
  *origin = WEIGHTS_FROM_DEFAULT;
  return DEFAULT_WEIGHTS;
}

/* ------------------------------------------------------------- operation */

/* R'G'B'A float in the input's space; an input without alpha stays without
 * (R'G'B' float) and a grey one stays grey (Y'(A) float: the core restores
 * it as R'=G'=B' and averages back), so a file keeps its channels. */
static void
prepare (GeglOperation *operation)
{
  const Babl *space  = gegl_operation_get_source_space (operation, "input");
  const Babl *source = gegl_operation_get_source_format (operation, "input");
  const gchar *name  = "R'G'B'A float";
  const Babl *format;

  if (source)
    {
      gboolean alpha  = babl_format_has_alpha (source);
      gint     colour = babl_format_get_n_components (source) - (alpha ? 1 : 0);

      if (colour == 1)
        name = alpha ? "Y'A float" : "Y' float";
      else if (colour > 1 && ! alpha)
        name = "R'G'B' float";
    }

  format = babl_format_with_space (name, space);
  gegl_operation_set_format (operation, "input", format);
  gegl_operation_set_format (operation, "output", format);
}

static GeglRectangle
get_cached_region (GeglOperation       *operation,
                   const GeglRectangle *roi)
{
  const GeglRectangle *in_rect =
    gegl_operation_source_get_bounding_box (operation, "input");

  if (! in_rect || gegl_rectangle_is_infinite_plane (in_rect))
    return *roi;

  return *in_rect;
}

static GeglRectangle
get_required_for_output (GeglOperation       *operation,
                         const gchar         *input_pad,
                         const GeglRectangle *roi)
{
  return get_cached_region (operation, roi);
}

static int
restore_progress (void   *user,
                  double  fraction)
{
  /* GEGL has no way to cancel an operation part-way, so this never stops
   * the run; the GIMP plug-in is where cancel lives. */
  gegl_operation_progress (GEGL_OPERATION (user), fraction, (gchar *) "");
  return 1;
}

static void
pass_through (GeglBuffer          *input,
              GeglBuffer          *output,
              const GeglRectangle *rect,
              const gchar         *why)
{
  g_warning ("maskdcpt:restore: %s; %s", why,
             _("the image is passed through unchanged"));
  gegl_buffer_copy (input, rect, GEGL_ABYSS_NONE, output, rect);
}

/* Runs the network on `pixels` (width x height x channels) into
 * `restored`.  Returns NULL, or why it could not (free with g_free). */
static gchar *
run_restore (GeglOperation *operation,
             CachedModel   *entry,
             gfloat        *pixels,
             gfloat        *restored,
             gint           width,
             gint           height,
             gint           channels)
{
  GeglProperties   *o     = GEGL_PROPERTIES (operation);
  maskdcpt_model   *model = entry->model;
  maskdcpt_context *ctx   = NULL;
  maskdcpt_error    err;
  maskdcpt_device   device;
  maskdcpt_image    in  = { pixels,   width, height, channels, (size_t) width * channels };
  maskdcpt_image    out = { restored, width, height, channels, (size_t) width * channels };
  gint              class_index = MASKDCPT_CLASS_AUTO;
  gint              threads = 0;
  gchar            *failure = NULL;

  if (o->degradation != MASKDCPT_OP_AUTO)
    {
      GEnumClass *klass = g_type_class_ref (maskdcpt_op_degradation_get_type ());
      GEnumValue *value = g_enum_get_value (klass, o->degradation);

      class_index = value ? maskdcpt_model_class_index (model, value->value_nick) : -1;
      if (class_index < 0)
        {
          gchar *why = g_strdup_printf (_("the weights file '%s' has no class '%s'; "
                                          "detecting the degradation instead"),
                                        entry->path, value ? value->value_nick : "?");

          g_warning ("maskdcpt:restore: %s", why);
          g_free (why);
          class_index = MASKDCPT_CLASS_AUTO;
        }
      g_type_class_unref (klass);
    }

  switch (o->device)
    {
    case MASKDCPT_OP_DEVICE_CPU:  device = MASKDCPT_DEVICE_CPU;  break;
    case MASKDCPT_OP_DEVICE_CUDA: device = MASKDCPT_DEVICE_CUDA; break;
    default:                      device = MASKDCPT_DEVICE_AUTO; break;
    }

  if (maskdcpt_context_new (model, &ctx, &err) != MASKDCPT_OK)
    return g_strdup (err.message);

  if (maskdcpt_context_set_device (ctx, device, &err) != MASKDCPT_OK)
    {
      failure = g_strdup (err.message);
      goto done;
    }
  if (maskdcpt_context_device_note (ctx)[0])
    g_debug ("maskdcpt:restore: %s", maskdcpt_context_device_note (ctx));

  /* GEGL's thread count (GIMP's "Number of threads to use"). */
  g_object_get (gegl_config (), "threads", &threads, NULL);
  maskdcpt_context_set_threads (ctx, MAX (threads, 0));
  maskdcpt_context_set_tile_size (ctx, o->tile_size);
  maskdcpt_context_set_progress (ctx, restore_progress, operation);

  if (maskdcpt_restore (ctx, &in, &out, class_index, (float) o->strength,
                        NULL, &err) != MASKDCPT_OK)
    failure = g_strdup (err.message);

done:
  maskdcpt_context_free (ctx);
  return failure;
}

static gboolean
process (GeglOperation       *operation,
         GeglBuffer          *input,
         GeglBuffer          *output,
         const GeglRectangle *result,
         gint                 level)
{
  GeglProperties      *o       = GEGL_PROPERTIES (operation);
  const Babl          *format  = gegl_operation_get_format (operation, "output");
  const GeglRectangle *in_rect = gegl_operation_source_get_bounding_box (operation, "input");
  GeglRectangle        rect    = *result;
  WeightsOrigin        origin;
  const gchar         *path    = weights_path (o, &origin);
  CachedModel         *entry;
  gchar               *message = NULL;
  gfloat              *pixels;
  gfloat              *restored;
  gint                 channels = babl_format_get_n_components (format);
  gsize                n;

  if (in_rect && ! gegl_rectangle_intersect (&rect, result, in_rect))
    return TRUE;
  if (rect.width <= 0 || rect.height <= 0)
    return TRUE;

  if (origin == WEIGHTS_FROM_DEFAULT && ! g_file_test (path, G_FILE_TEST_EXISTS))
    {
      message = g_strdup_printf (_("no weights file: the shipped weights (%s) are not "
                                   "installed; set the 'weights' property or "
                                   "$MASKDCPT_WEIGHTS"), path);
      pass_through (input, output, &rect, message);
      g_free (message);
      return TRUE;
    }

  entry = model_acquire (path, &message);
  if (! entry)
    {
      if (origin == WEIGHTS_FROM_ENVIRONMENT)
        {
          gchar *why = g_strdup_printf ("%s (%s)", message,
                                        _("the file named by $MASKDCPT_WEIGHTS"));

          g_free (message);
          message = why;
        }
      pass_through (input, output, &rect, message);
      g_free (message);
      return TRUE;
    }

  n        = (gsize) rect.width * (gsize) rect.height * (gsize) channels;
  pixels   = g_try_new (gfloat, n);
  restored = g_try_new (gfloat, n);

  if (! pixels || ! restored)
    {
      message = g_strdup_printf (_("out of memory for a %d x %d image"),
                                 rect.width, rect.height);
    }
  else
    {
      gegl_operation_progress (operation, 0.0, (gchar *) "");
      gegl_buffer_get (input, &rect, 1.0, format, pixels,
                       GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);

      message = run_restore (operation, entry, pixels, restored,
                             rect.width, rect.height, channels);
      if (! message)
        gegl_buffer_set (output, &rect, 0, format, restored, GEGL_AUTO_ROWSTRIDE);
      gegl_operation_progress (operation, 1.0, (gchar *) "");
    }

  if (message)
    pass_through (input, output, &rect, message);

  g_free (message);
  g_free (pixels);
  g_free (restored);
  model_release (entry);
  return TRUE;
}

/* An infinite input (a colour, a noise source) has no photo to restore,
 * and strength 0 is the input itself: both pass the input buffer on. */
static gboolean
operation_process (GeglOperation        *operation,
                   GeglOperationContext *context,
                   const gchar          *output_prop,
                   const GeglRectangle  *result,
                   gint                  level)
{
  GeglProperties      *o       = GEGL_PROPERTIES (operation);
  const GeglRectangle *in_rect =
    gegl_operation_source_get_bounding_box (operation, "input");

  if ((in_rect && gegl_rectangle_is_infinite_plane (in_rect)) || o->strength <= 0.0)
    {
      gpointer in = gegl_operation_context_get_object (context, "input");

      if (in)
        gegl_operation_context_take_object (context, "output",
                                            G_OBJECT (g_object_ref (in)));
      return TRUE;
    }

  return GEGL_OPERATION_CLASS (gegl_op_parent_class)->process (operation, context,
                                                               output_prop, result,
                                                               gegl_operation_context_get_level (context));
}

static void
gegl_op_class_init (GeglOpClass *klass)
{
  GeglOperationClass       *operation_class = GEGL_OPERATION_CLASS (klass);
  GeglOperationFilterClass *filter_class    = GEGL_OPERATION_FILTER_CLASS (klass);

  operation_class->threaded                = FALSE;  /* the core has its own threads */
  operation_class->prepare                 = prepare;
  operation_class->process                 = operation_process;
  operation_class->get_cached_region       = get_cached_region;
  operation_class->get_required_for_output = get_required_for_output;
  filter_class->process                    = process;

  gegl_operation_class_set_keys (operation_class,
    "name",            "maskdcpt:restore",
    "title",           _("Restore (MaskDCPT)"),
    "categories",      "enhance:noise-reduction",
    "license",         "GPL3+",
    "description",     _("Removes noise, blur, JPEG artifacts, haze, rain and "
                         "low-light damage with a neural network that recognises "
                         "which damage a photo has (MaskDCPT)."),
    "gimp:menu-path",  "<Image>/Filters/Enhance",
    "gimp:menu-label", _("Restore (MaskDCPT)..."),
    NULL);
}

G_MODULE_EXPORT const GeglModuleInfo *
gegl_module_query (GTypeModule *module)
{
  return &modinfo;
}

G_MODULE_EXPORT gboolean
gegl_module_register (GTypeModule *module)
{
  /* Before the class is made: its labels are translated in class_init. */
  bindtextdomain (GETTEXT_PACKAGE, MASKDCPT_LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");

  gegl_op_maskdcpt_restore_register_type (module);
  return TRUE;
}

#endif
