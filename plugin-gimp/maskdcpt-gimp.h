/* maskdcpt-gimp.h - shared parts of the GIMP 3 plug-in (docs/gimp.md).
 *
 * plugin.c     the GimpPlugIn, the procedure and its arguments, run()
 * engine.c     weights, devices, drawable pixels <-> libmaskdcpt, the
 *              restoration of a drawable (selection, undo, shadow, merge)
 * dialog.c     the GimpProcedureDialog: class choice, probability bars,
 *              device note, before/after preview of a crop
 *
 * The plug-in shares nothing with the GEGL op but the core.
 */
#ifndef MASKDCPT_GIMP_H
#define MASKDCPT_GIMP_H

#include <libgimp/gimp.h>

#include "maskdcpt.h"

#define MDG_PROC          "plug-in-maskdcpt-restore"
#define MDG_BINARY        "maskdcpt-restore"
#define MDG_ROLE          "maskdcpt-restore"
#define MDG_AUTO          "auto"

/* Smallest layer (or selection plus its context) edge the plug-in runs on:
 * below this the network sees too little to tell the damage apart. */
#define MDG_MIN_EDGE      16
/* Pixels of context read around the selection: the network sees the
 * surroundings of a selected area, only the selection changes. */
#define MDG_CONTEXT       32

#define MDG_ERROR (mdg_error_quark ())
GQuark mdg_error_quark (void);

/* A loaded weights file. */
typedef struct
{
  maskdcpt_model *model;
  gchar          *path;
  gboolean        untrained;   /* a `maskdcpt init` file: restores nothing */
} MdgModel;

/* Loads the weights: `weights` (may be NULL), else $MASKDCPT_WEIGHTS, else
 * the installed network `network` ("fast" or "quality"; NULL: fast).  NULL
 * with a message for the user on failure. */
MdgModel   *mdg_model_load          (GFile                *weights,
                                     const gchar          *network,
                                     GError              **error);
void        mdg_model_free          (MdgModel             *model);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdgModel, mdg_model_free)

/* The translated label of a class name ("noise" -> "Noise"), or the name
 * itself for a class this plug-in does not know (custom weights). */
const gchar *mdg_class_label        (const gchar          *name);

/* "auto" -> MASKDCPT_CLASS_AUTO; a class of the model -> its index;
 * anything else -> -2 with an error listing the model's classes. */
gint        mdg_class_index         (const MdgModel       *model,
                                     const gchar          *degradation,
                                     GError              **error);

/* A context on `device` ("auto", "cpu", "cuda").  A CUDA request that
 * fails falls back to the CPU; *note (free with g_free) then says why,
 * for the status bar.  NULL with an error only when no context at all. */
maskdcpt_context *mdg_context_new   (const MdgModel       *model,
                                     const gchar          *device,
                                     gchar               **note,
                                     GError              **error);

/* The float format the plug-in reads `drawable` in (R'G'B'(A) or Y'(A)
 * float in the drawable's space) and its channel count. */
const Babl *mdg_drawable_format     (GimpDrawable         *drawable,
                                     gint                 *channels);

/* Pixels of a rectangle of a drawable, as floats. */
typedef struct
{
  gint    x, y, width, height;
  gint    channels;
  gfloat *data;
} MdgPixels;

gboolean    mdg_pixels_read         (GimpDrawable         *drawable,
                                     gint                  x,
                                     gint                  y,
                                     gint                  width,
                                     gint                  height,
                                     MdgPixels            *out,
                                     GError              **error);
void        mdg_pixels_clear        (MdgPixels            *pixels);

/* The rectangle restore reads for `drawable`: its selection's bounds in
 * it plus MDG_CONTEXT pixels, or the whole layer.  FALSE when the
 * selection does not touch the layer. */
gboolean    mdg_drawable_region     (GimpDrawable         *drawable,
                                     GeglRectangle        *read,
                                     GeglRectangle        *write);

/* Restores `in` into `out` (same geometry) on a context from
 * mdg_context_new; a device failure during the run is retried on the CPU
 * (note set as above).  Cancel from `progress` gives MDG_ERROR_CANCELLED.
 * `given`, when not NULL (one entry per class of the model), is the
 * conditioning to use instead of class_index: the dialog's preview of a
 * crop passes the probabilities detected on the whole region. */
gboolean    mdg_run                 (const MdgModel       *model,
                                     const gchar          *device,
                                     const maskdcpt_image *in,
                                     const maskdcpt_image *out,
                                     gint                  class_index,
                                     const gfloat         *given,
                                     gfloat                strength,
                                     maskdcpt_progress_fn  progress,
                                     gpointer              progress_data,
                                     gchar               **note,
                                     GError              **error);

enum
{
  MDG_ERROR_NO_WEIGHTS,
  MDG_ERROR_WEIGHTS,
  MDG_ERROR_CLASS,
  MDG_ERROR_TOO_SMALL,
  MDG_ERROR_MEMORY,
  MDG_ERROR_DEVICE,
  MDG_ERROR_CANCELLED,
  MDG_ERROR_FAILED
};

/* The whole job of the procedure on one drawable: selection, one undo
 * step, shadow buffer and merge, progress with cancel.  Strength 0
 * changes nothing.  On failure or cancel the drawable is unchanged. */
GimpPDBStatusType mdg_restore_drawable (GimpDrawable      *drawable,
                                        const MdgModel    *model,
                                        const gchar       *degradation,
                                        gdouble            strength,
                                        const gchar       *device,
                                        GError           **error);

/* The dialog (dialog.c).  TRUE when the user pressed OK; the settings are
 * then in `config`. */
gboolean    mdg_dialog_run          (GimpProcedure        *procedure,
                                     GimpProcedureConfig  *config,
                                     GimpDrawable         *drawable);

#endif /* MASKDCPT_GIMP_H */
