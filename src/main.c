/* main.c: ringcast, the io_uring chat broadcaster. */
#include "config.h"
#include "server.h"

int main(int argc, char **argv)
{
	struct config cfg;
	int rc = config_parse(&cfg, argc, argv);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	return server_run(&cfg);
}
