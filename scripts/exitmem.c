/* Where a program's resident pages are when it exits (scripts/bench.d/25-pages,
 * docs/levers.md "fourth round"). Runs argv[1..] under ptrace with
 * PTRACE_O_TRACEEXIT, so the process stops at exit with its memory still
 * mapped, and prints one line per mapping of /proc/PID/smaps that holds
 * resident pages:
 *   "<start>-<end> <perms> <Rss KiB> <Anonymous KiB> <pages in large folios> <name>"
 * then "maxrss <ru_maxrss KiB> exit <code>". The third figure needs root:
 * each present page's frame number from /proc/PID/pagemap, looked up in
 * /proc/kpageflags (compound head or tail = the page cache or THP holds it
 * in a folio larger than one page). Output of the program goes to /dev/null.
 * With -p, also print each resident page of file-backed mappings as
 * "page <address>" (to compare with the pages the program touched). */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int pagemap = -1, kflags = -1, listpages = 0;

/* Resident pages of [start, end) and how many sit in compound folios. */
static void scan(unsigned long start, unsigned long end, int file, long *present, long *big) {
    long ps = sysconf(_SC_PAGESIZE);
    for (unsigned long a = start; a < end; a += ps) {
        uint64_t e;
        if (pread(pagemap, &e, 8, (off_t)(a / ps) * 8) != 8) return;
        if (!(e >> 63)) continue;
        (*present)++;
        if (file && listpages) printf("page %lx\n", a);
        uint64_t pfn = e & ((1ULL << 55) - 1), f;
        if (pfn && kflags >= 0 && pread(kflags, &f, 8, (off_t)pfn * 8) == 8 &&
            (f & ((1ULL << 15) | (1ULL << 16))))
            (*big)++;
    }
}

static void report(pid_t pid) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
    pagemap = open(path, O_RDONLY);
    kflags = open("/proc/kpageflags", O_RDONLY);
    snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); return; }
    unsigned long s = 0, e = 0;
    char perms[8] = "", name[256] = "";
    long rss = 0, anon = 0;
    int have = 0;
    for (;;) {
        char *ok = fgets(line, sizeof line, f);
        unsigned long a, b;
        char p[8], n[256] = "";
        long off, ino;
        char dev[16];
        int head = ok && sscanf(line, "%lx-%lx %7s %lx %15s %ld %255[^\n]", &a, &b, p, &off, dev, &ino, n) >= 6;
        if ((head || !ok) && have) {
            if (rss > 0) {
                long present = 0, big = 0;
                char *nm = name;
                while (*nm == ' ') nm++;
                scan(s, e, *nm == '/', &present, &big);
                printf("%lx-%lx %s %ld %ld %ld %s\n", s, e, perms, rss, anon, big * 4, *nm ? nm : "[anon]");
            }
            have = 0;
        }
        if (!ok) break;
        if (head) {
            s = a; e = b; strcpy(perms, p); strcpy(name, n); rss = anon = 0; have = 1;
        } else if (sscanf(line, "Rss: %ld", &a) == 1) rss = (long)a;
        else if (sscanf(line, "Anonymous: %ld", &a) == 1) anon = (long)a;
    }
    fclose(f);
}

int main(int argc, char **argv) {
    int a = 1;
    if (a < argc && !strcmp(argv[a], "-p")) { listpages = 1; a++; }
    if (a >= argc) { fprintf(stderr, "usage: exitmem [-p] CMD [ARGS...]\n"); return 2; }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) { dup2(null, 1); dup2(null, 2); }
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execvp(argv[a], argv + a);
        _exit(127);
    }
    int status;
    struct rusage ru;
    /* The stop after exec. */
    if (waitpid(pid, &status, 0) < 0 || !WIFSTOPPED(status)) { fprintf(stderr, "exitmem: no exec stop\n"); return 2; }
    ptrace(PTRACE_SETOPTIONS, pid, 0, (void *)PTRACE_O_TRACEEXIT);
    ptrace(PTRACE_CONT, pid, 0, 0);
    for (;;) {
        if (wait4(pid, &status, 0, &ru) < 0) { perror("wait4"); return 2; }
        if (WIFEXITED(status) || WIFSIGNALED(status)) break;
        if (WIFSTOPPED(status) && (status >> 8) == (SIGTRAP | (PTRACE_EVENT_EXIT << 8))) {
            report(pid);
            ptrace(PTRACE_CONT, pid, 0, 0);
        } else if (WIFSTOPPED(status)) {
            int sig = WSTOPSIG(status);
            ptrace(PTRACE_CONT, pid, 0, (void *)(long)(sig == SIGTRAP ? 0 : sig));
        }
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("maxrss %ld exit %d\n", ru.ru_maxrss, code);
    return 0;
}
