/*
 * cri_pause.c: the pod sandbox's process for the CRI tests' local pause image.
 *
 * A Kubernetes pod's sandbox container holds the pod's namespaces and does nothing else: it
 * waits for signals. SIGTERM and SIGINT end it with status 0 (StopPodSandbox sends SIGTERM
 * first); SIGCHLD reaps whatever child it inherited as the init of a shared PID namespace. It is
 * linked statically so the image needs nothing but this one file.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exit at once on a stop signal: nothing is left to clean up. */
static void
pause_on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

/* Reap every exited child, keeping the interrupted code's errno. */
static void
pause_on_child(int sig)
{
	int saved = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		continue;
	errno = saved;
}

int
main(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = pause_on_stop;
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		return 1;
	sa.sa_handler = pause_on_child;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	if (sigaction(SIGCHLD, &sa, NULL) != 0)
		return 1;
	for (;;)
		pause();
}
