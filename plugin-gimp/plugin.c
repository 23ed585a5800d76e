/* plugin.c - the GIMP 3 plug-in "Restore Photo (MaskDCPT)" (docs/gimp.md).
 *
 * One image procedure, plug-in-maskdcpt-restore, under Filters > Enhance:
 * it restores the selected layer (or the selected part of it) with the
 * network of libmaskdcpt, in one undo step.  Its arguments are declared
 * once, below; the dialog, scripts and batch jobs all go through them, and
 * GIMP keeps the last values for RUN-WITH-LAST-VALS.
 */

#include "config.h"

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>

#include "maskdcpt-gimp.h"

struct _MdgPlugIn
{
  GimpPlugIn parent_instance;
};

#define MDG_TYPE_PLUG_IN (mdg_plug_in_get_type ())
G_DECLARE_FINAL_TYPE (MdgPlugIn, mdg_plug_in, MDG, PLUG_IN, GimpPlugIn)
G_DEFINE_TYPE (MdgPlugIn, mdg_plug_in, GIMP_TYPE_PLUG_IN)

GIMP_MAIN (MDG_TYPE_PLUG_IN)

static GList *
mdg_query_procedures (GimpPlugIn *plug_in)
{
  return g_list_append (NULL, g_strdup (MDG_PROC));
}

/* GIMP only looks for catalogs inside the plug-in's folder; ours live in
 * the project's locale directory, shared with the command-line tool and
 * the GEGL op, so the domain is bound here and GIMP's own binding is
 * declined.  Called before the procedure is created or run, so every
 * label below is in the user's language. */
static gboolean
mdg_set_i18n (GimpPlugIn   *plug_in,
              const gchar  *procedure_name,
              gchar       **gettext_domain,
              gchar       **catalog_dir)
{
  /* $MASKDCPT_LOCALEDIR: catalogs of an uninstalled build (BUILD/po). */
  const gchar *dir = g_getenv ("MASKDCPT_LOCALEDIR");

  bindtextdomain (GETTEXT_PACKAGE, dir && dir[0] ? dir : MASKDCPT_LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  return FALSE;
}

static GimpValueArray *
mdg_run_procedure (GimpProcedure        *procedure,
                   GimpRunMode           run_mode,
                   GimpImage            *image,
                   GimpDrawable        **drawables,
                   GimpProcedureConfig  *config,
                   gpointer              run_data)
{
  g_autoptr (GError)   error       = NULL;
  g_autoptr (MdgModel) model       = NULL;
  g_autoptr (GFile)    weights     = NULL;
  g_autofree gchar    *degradation = NULL;
  g_autofree gchar    *device      = NULL;
  g_autofree gchar    *network     = NULL;
  gdouble              strength    = 1.0;
  GimpDrawable        *drawable;
  GimpPDBStatusType    status;

  gegl_init (NULL, NULL);

  if (! drawables || ! drawables[0] || drawables[1])
    {
      g_set_error (&error, MDG_ERROR, MDG_ERROR_FAILED,
                   _("Restore Photo works on one layer at a time: select exactly one."));
      return gimp_procedure_new_return_values (procedure, GIMP_PDB_CALLING_ERROR, g_steal_pointer (&error));
    }
  drawable = drawables[0];

  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      gimp_ui_init (MDG_BINARY);
      if (! mdg_dialog_run (procedure, config, drawable))
        return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL, NULL);
    }

  g_object_get (config,
                "degradation", &degradation,
                "strength",    &strength,
                "weights",     &weights,
                "device",      &device,
                "network",     &network,
                NULL);

  model = mdg_model_load (weights, network, &error);
  if (! model)
    return gimp_procedure_new_return_values (procedure, GIMP_PDB_EXECUTION_ERROR, g_steal_pointer (&error));

  if (model->untrained && run_mode != GIMP_RUN_INTERACTIVE)
    {
      g_autofree gchar *text =
        g_strdup_printf (_("%s holds untrained, random weights: results are not restorations."),
                         model->path);
      gimp_message (text);
    }

  status = mdg_restore_drawable (drawable, model, degradation, strength, device, &error);
  if (status == GIMP_PDB_SUCCESS && run_mode != GIMP_RUN_NONINTERACTIVE)
    gimp_displays_flush ();

  return gimp_procedure_new_return_values (procedure, status, g_steal_pointer (&error));
}

static GimpProcedure *
mdg_create_procedure (GimpPlugIn  *plug_in,
                      const gchar *name)
{
  GimpProcedure *procedure;

  if (g_strcmp0 (name, MDG_PROC) != 0)
    return NULL;

  procedure = gimp_image_procedure_new (plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN,
                                        mdg_run_procedure, NULL, NULL);

  gimp_procedure_set_image_types (procedure, "RGB*, GRAY*");
  gimp_procedure_set_sensitivity_mask (procedure, GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
  gimp_procedure_set_menu_label (procedure, _("Restore _Photo (MaskDCPT)..."));
  gimp_procedure_add_menu_path (procedure, "<Image>/Filters/Enhance");
  gimp_procedure_set_documentation (procedure,
    _("Remove noise, blur, JPEG artifacts, haze, rain or low light with a neural network"),
    _("Restores the selected layer, or the selected part of it, with a network "
      "that recognises which damage a photo has (MaskDCPT). 'Auto-detect' lets "
      "it decide; naming a degradation forces that one. Alpha is kept, the "
      "whole change is one undo step."),
    name);
  gimp_procedure_set_attribution (procedure, "maskdcpt authors", "maskdcpt authors", "2026");

  /* The class names of the default weights, for the help text: a weights
   * file may bring its own, which the dialog lists. */
  gimp_procedure_add_string_argument (procedure, "degradation",
    _("_Degradation"),
    _("'auto' to detect the damage, or the name of a class of the weights "
      "file to force it (the default weights: clean, noise, gaussian-blur, "
      "motion-blur, defocus-blur, jpeg, haze, rain, low-light, "
      "low-resolution, mixed-realesrgan, mixed-lowlight)"),
    MDG_AUTO, G_PARAM_READWRITE);

  gimp_procedure_add_double_argument (procedure, "strength",
    _("S_trength"),
    _("How much of the restoration to apply: 0 leaves the image unchanged, "
      "1 applies it fully."),
    0.0, 1.0, 1.0, G_PARAM_READWRITE);

  gimp_procedure_add_file_argument (procedure, "weights",
    _("_Weights file"),
    _("A maskdcpt weights file (.safetensors). None: the file named by "
      "$MASKDCPT_WEIGHTS, else the installed default weights."),
    GIMP_FILE_CHOOSER_ACTION_OPEN, TRUE, NULL, G_PARAM_READWRITE);

  gimp_procedure_add_choice_argument (procedure, "network",
    _("_Network"),
    _("The shipped network to use when no weights file is chosen: fast "
      "(width 16; about 13 s for 12 megapixels on a 2-core CPU) or quality "
      "(width 32; about 4x slower, better on noise and haze)."),
    gimp_choice_new_with_values ("fast",    0, _("Fast"),    NULL,
                                 "quality", 1, _("Quality"), NULL,
                                 NULL),
    "fast", G_PARAM_READWRITE);

  gimp_procedure_add_choice_argument (procedure, "device",
    _("De_vice"),
    _("Where the network runs: auto (the GPU when usable, else the CPU), "
      "cpu, or cuda (falls back to the CPU with a message)."),
    gimp_choice_new_with_values ("auto", 0, _("Auto (GPU if available)"), NULL,
                                 "cpu",  1, _("CPU"),  NULL,
                                 "cuda", 2, _("GPU (CUDA)"), NULL,
                                 NULL),
    "auto", G_PARAM_READWRITE);

  return procedure;
}

static void
mdg_plug_in_class_init (MdgPlugInClass *klass)
{
  GimpPlugInClass *plug_in_class = GIMP_PLUG_IN_CLASS (klass);

  plug_in_class->query_procedures = mdg_query_procedures;
  plug_in_class->create_procedure = mdg_create_procedure;
  plug_in_class->set_i18n         = mdg_set_i18n;
}

static void
mdg_plug_in_init (MdgPlugIn *self)
{
}
