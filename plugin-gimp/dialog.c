/* dialog.c - placeholder dialog (replaced below). */
#include "config.h"
#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>
#include "maskdcpt-gimp.h"

gboolean
mdg_dialog_run (GimpProcedure       *procedure,
                GimpProcedureConfig *config,
                GimpDrawable        *drawable)
{
  GtkWidget *dialog = gimp_procedure_dialog_new (procedure, config, _("Restore Photo (MaskDCPT)"));
  gboolean   run;

  gimp_procedure_dialog_fill (GIMP_PROCEDURE_DIALOG (dialog), NULL);
  run = gimp_procedure_dialog_run (GIMP_PROCEDURE_DIALOG (dialog));
  gtk_widget_destroy (dialog);
  return run;
}
