/* degrade_cmd.h - `maskdcpt degrade` (make a test pair: a photo with a
 * synthetic degradation of a known class) and `maskdcpt contact-sheet`
 * (every class at three levels on one image).  Both return the process
 * exit status: 0 success, 1 failure, 2 usage error. */
#ifndef MASKDCPT_DEGRADE_CMD_H
#define MASKDCPT_DEGRADE_CMD_H

int cli_degrade(int argc, char **argv);
int cli_contact_sheet(int argc, char **argv);

#endif
