/* main.c: ringcast, the io_uring chat broadcaster.
 *
 * Exit status: 0 after a clean shutdown or --help/--version, 2 for a bad
 * command line, 1 when the server could not start or failed while running. */
#include "config.h"
#include "server.h"

int main(int argc, char **argv)
{
	struct config cfg;
	int rc = config_parse(&cfg, argc, argv);
	if (rc == 0)
		rc = server_run(&cfg);
	else
		rc = rc > 0 ? 0 : 2;
	/* freed before exit so that LeakSanitizer, which runs at exit, finds
	 * nothing: a leak report would turn any exit status into its own */
	config_free(&cfg);
	return rc;
}
