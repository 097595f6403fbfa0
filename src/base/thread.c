/* thread.c: helper threads that never take signals (thread.h). */
#include "thread.h"

#include <signal.h>

int thread_start(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg)
{
	/* the new thread inherits the mask in force when it is created */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(thread, NULL, fn, arg);
	if (!err)
		pthread_setname_np(*thread, name);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}
