/* Launcher for the VM lab benchmark (scripts/bench.d/70-lab): fork, exec
 * argv[1..] with its output discarded, and while it runs read the child's
 * /proc/PID/status every millisecond, keeping the highest RssAnon and
 * RssFile seen; then wait4. Prints one line:
 *   "<ru_maxrss_kib> <rss_anon_peak_kib> <rss_file_peak_kib> <samples> <exit>"
 * The anonymous / file-backed split is sampled, so a peak shorter than the
 * sampling period can be missed; ru_maxrss (the kernel's own high-water
 * mark) is exact. A guest kernel measures the program itself (under
 * qemu-user, /proc would show qemu). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long field(const char *buf, const char *name) {
    const char *p = strstr(buf, name);
    return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: procmem CMD [ARGS...]\n"); return 2; }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) { dup2(null, 1); dup2(null, 2); }
        execvp(argv[1], argv + 1);
        _exit(127);
    }
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    long anon = 0, file = 0, samples = 0;
    int status; struct rusage ru;
    const struct timespec ms = {0, 1000000};
    for (;;) {
        pid_t w = wait4(pid, &status, WNOHANG, &ru);
        if (w < 0) { perror("wait4"); return 2; }
        if (w == pid) break;
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n > 0) {
                buf[n] = 0;
                long a = field(buf, "RssAnon:"), f = field(buf, "RssFile:");
                /* Before exec and after exit_mm the fields are absent. */
                if (a >= 0 && f >= 0) {
                    samples++;
                    if (a > anon) anon = a;
                    if (f > file) file = f;
                }
            }
        }
        nanosleep(&ms, NULL);
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("%ld %ld %ld %ld %d\n", ru.ru_maxrss, anon, file, samples, code);
    return 0;
}
