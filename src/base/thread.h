/* thread.h: starting the process's helper threads (store, sequencer,
 * cluster). */
#ifndef RINGCAST_THREAD_H
#define RINGCAST_THREAD_H

#include <pthread.h>

/* Start fn(arg) on a thread named name (for top -H and perf) that has
 * every signal blocked, so SIGINT and SIGTERM always reach the edges'
 * signalfd, never it. 0, or the pthread_create error. */
int thread_start(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg);

#endif
