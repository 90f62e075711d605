/* A small tree: parent forks 2 children, each child forks one grandchild; all loop on usleep. */
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < 2; i++) {
		if (fork() == 0) {
			if (fork() == 0)
				for (;;) usleep(10000);
			for (;;) usleep(10000);
		}
	}
	printf("ready\n");
	for (;;) {
		waitpid(-1, NULL, WNOHANG);
		usleep(10000);
	}
}
