/* server.h: wiring the layers together: listener, signals, shutdown. */
#ifndef RINGCAST_SERVER_H
#define RINGCAST_SERVER_H

#include "config.h"

/* Set everything up, serve until SIGINT/SIGTERM, tear down. Returns the
 * process exit status. */
int server_run(const struct config *cfg);

#endif
