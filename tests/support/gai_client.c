/*
 * gai_client: asks the C library's getaddrinfo() to resolve names, one per input line.
 *
 * Built twice by tests/support/libc.py: with gcc against glibc (dynamic: glibc's resolver
 * lives behind NSS modules) and with musl-gcc against musl (static). Run by it in a private
 * mount namespace where /etc/resolv.conf, /etc/hosts and /etc/nsswitch.conf are the test's.
 *
 * Input (stdin), one query a line:   FAMILY NAME        FAMILY is 4 or 6
 * Output (stdout), one line a query: CODE [ADDRESS...]
 *   CODE is OK, EAI_NONAME, EAI_NODATA (where the libc defines it), EAI_AGAIN, EAI_FAIL, ...
 *   or the numeric return value when it has no symbol here; ADDRESS are the distinct numeric
 *   addresses getaddrinfo returned, sorted (strcmp order). Each line is flushed on its own.
 *   A malformed input line gives "BADINPUT" (the name is never passed on).
 *
 * hints: ai_family AF_INET or AF_INET6, ai_socktype SOCK_STREAM, ai_flags 0, no service.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define MAX_LINE 4096
#define MAX_ADDRS 256

static const char *code_name(int rc)
{
    switch (rc) {
    case 0: return "OK";
#ifdef EAI_NONAME
    case EAI_NONAME: return "EAI_NONAME";
#endif
#ifdef EAI_NODATA
    case EAI_NODATA: return "EAI_NODATA";
#endif
#ifdef EAI_AGAIN
    case EAI_AGAIN: return "EAI_AGAIN";
#endif
#ifdef EAI_FAIL
    case EAI_FAIL: return "EAI_FAIL";
#endif
#ifdef EAI_SYSTEM
    case EAI_SYSTEM: return "EAI_SYSTEM";
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
#endif
#ifdef EAI_FAMILY
    case EAI_FAMILY: return "EAI_FAMILY";
#endif
#ifdef EAI_SERVICE
    case EAI_SERVICE: return "EAI_SERVICE";
#endif
#ifdef EAI_SOCKTYPE
    case EAI_SOCKTYPE: return "EAI_SOCKTYPE";
#endif
#ifdef EAI_BADFLAGS
    case EAI_BADFLAGS: return "EAI_BADFLAGS";
#endif
#ifdef EAI_MEMORY
    case EAI_MEMORY: return "EAI_MEMORY";
#endif
#ifdef EAI_OVERFLOW
    case EAI_OVERFLOW: return "EAI_OVERFLOW";
#endif
    default: return NULL;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void query(int family, const char *name)
{
    struct addrinfo hints, *res = NULL, *ai;
    static char text[MAX_ADDRS][INET6_ADDRSTRLEN];
    char *sorted[MAX_ADDRS];
    int n = 0, rc, i;
    const char *sym;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(name, NULL, &hints, &res);

    sym = code_name(rc);
    if (sym)
        fputs(sym, stdout);
    else
        printf("%d", rc);
    if (rc == 0) {
        for (ai = res; ai && n < MAX_ADDRS; ai = ai->ai_next) {
            const void *addr;
            if (ai->ai_family == AF_INET)
                addr = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
            else if (ai->ai_family == AF_INET6)
                addr = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
            else
                continue;
            if (!inet_ntop(ai->ai_family, addr, text[n], sizeof text[n]))
                continue;
            sorted[n] = text[n];
            n++;
        }
        freeaddrinfo(res);
        qsort(sorted, n, sizeof sorted[0], cmp_str);
        for (i = 0; i < n; i++)
            if (i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0)
                printf(" %s", sorted[i]);
    }
    putchar('\n');
    fflush(stdout);
}

int main(void)
{
    static char line[MAX_LINE];

    /* Outside its sandbox this would ask the machine's real resolver: refuse. */
    if (!getenv("GAI_CLIENT_SANDBOX") || strcmp(getenv("GAI_CLIENT_SANDBOX"), "1") != 0) {
        fputs("gai_client: run it through tests/support/libc.py (it needs the test's "
              "/etc/resolv.conf in a private mount namespace)\n", stderr);
        return 2;
    }

    while (fgets(line, sizeof line, stdin)) {
        size_t len = strlen(line);
        char *name;
        int family;

        if (len == 0 || line[len - 1] != '\n') {
            /* Too long or unterminated: skip the rest of the line, answer BADINPUT. */
            int c = 0;
            if (len == sizeof line - 1)
                while ((c = getchar()) != '\n' && c != EOF)
                    ;
            puts("BADINPUT");
            fflush(stdout);
            continue;
        }
        line[--len] = 0;
        if (len < 3 || (line[0] != '4' && line[0] != '6') || line[1] != ' ' || !line[2]
            || strpbrk(line + 2, " \t\r")) {
            puts("BADINPUT");
            fflush(stdout);
            continue;
        }
        family = line[0] == '4' ? AF_INET : AF_INET6;
        name = line + 2;
        query(family, name);
    }
    return 0;
}
