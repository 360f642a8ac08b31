/* SPDX-License-Identifier: MIT */
/* A TCP echo server that answers in upper case, first with a thread per
 * connection, then with a pool of threads; twenty clients in the same program.
 *
 * Python original:
 *     import socket, threading
 *     from concurrent.futures import ThreadPoolExecutor
 *
 *     def handle(conn):                    # one connection, until the client hangs up
 *         with conn:
 *             while data := conn.recv(4096):
 *                 conn.sendall(data.upper())
 *
 *     def serve(server, spawn, stopping):
 *         while True:
 *             conn, _ = server.accept()
 *             if stopping.is_set():        # the wake-up connection
 *                 conn.close()
 *                 return
 *             spawn(conn)
 *
 *     def client(n, port):
 *         with socket.create_connection(("127.0.0.1", port)) as sock:
 *             for i in range(100):
 *                 line = f"client {n} line {i}\n".encode()
 *                 sock.sendall(line)
 *                 echo = b""
 *                 while len(echo) < len(line):
 *                     echo += sock.recv(len(line) - len(echo))
 *                 assert echo == line.upper()
 *
 *     def run(spawn):
 *         server = socket.create_server(("127.0.0.1", 0))   # any free port
 *         port = server.getsockname()[1]
 *         stopping = threading.Event()
 *         acceptor = threading.Thread(target=serve, args=(server, spawn, stopping))
 *         acceptor.start()
 *         clients = [threading.Thread(target=client, args=(n, port)) for n in range(20)]
 *         for t in clients: t.start()
 *         for t in clients: t.join()
 *         stopping.set()
 *         socket.create_connection(("127.0.0.1", port)).close()  # wakes accept()
 *         acceptor.join()
 *         server.close()
 *
 *     run(lambda conn: threading.Thread(target=handle, args=(conn,)).start())
 *     with ThreadPoolExecutor(8) as pool:
 *         run(lambda conn: pool.submit(handle, conn))
 *
 * The C server also keeps its connection threads, to join them when it stops.
 */
#define _POSIX_C_SOURCE 200809L
#include <pysync/pysync.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CLIENTS = 20, LINES = 100, POOL_WORKERS = 8, MAX_CONNECTIONS = 64 };

struct server {
    int listen_fd;
    uint16_t port;
    ps_executor_t *pool;                /* NULL: a thread per connection */
    atomic_bool stopping;
    ps_thread_t *acceptor;
    ps_thread_t *handlers[MAX_CONNECTIONS];     /* written by the acceptor only */
    int n_handlers;
};

static atomic_int connections_handled;

static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);  /* a closed peer: no SIGPIPE */
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int recv_all(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n <= 0)
            return -1;                  /* 0: the peer hung up early */
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int connect_to(uint16_t port)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *handle(void *arg)
{
    int conn = (int)(intptr_t)arg;
    char data[4096];
    ssize_t n;
    while ((n = recv(conn, data, sizeof data, 0)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            data[i] = (char)toupper((unsigned char)data[i]);
        if (send_all(conn, data, (size_t)n) != 0)
            break;
    }
    close(conn);
    atomic_fetch_add(&connections_handled, 1);
    return NULL;
}

static int spawn(struct server *s, int conn)
{
    void *arg = (void *)(intptr_t)conn;
    if (s->pool) {
        ps_future_t *f = ps_executor_submit(s->pool, handle, arg);
        if (!f)
            return -1;
        ps_future_free(f);              /* the task runs on; nobody wants its result */
        return 0;
    }
    if (s->n_handlers == MAX_CONNECTIONS)
        return -1;
    ps_thread_t *t = ps_thread_new(handle, arg, NULL);
    if (!t || ps_thread_start(t) != 0) {
        ps_thread_free(t);
        return -1;
    }
    s->handlers[s->n_handlers++] = t;
    return 0;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    for (;;) {
        int conn = accept(s->listen_fd, NULL, NULL);
        if (conn < 0 && (errno == ECONNABORTED || errno == EINTR))
            continue;                   /* the client gave up already */
        if (conn < 0) {
            perror("accept");           /* a real server would log it and retry */
            return NULL;
        }
        if (atomic_load(&s->stopping)) {
            close(conn);                /* the wake-up connection */
            return NULL;
        }
        if (spawn(s, conn) != 0)
            close(conn);
    }
}

static int server_start(struct server *s, ps_executor_t *pool)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };  /* any free port */
    socklen_t len = sizeof addr;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    s->pool = pool;
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(s->listen_fd, MAX_CONNECTIONS) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    s->port = ntohs(addr.sin_port);
    s->acceptor = ps_thread_new(serve, s, "acceptor");
    return s->acceptor && ps_thread_start(s->acceptor) == 0 ? 0 : -1;
}

static int server_stop(struct server *s)
{
    atomic_store(&s->stopping, true);
    int wake = connect_to(s->port);     /* accept() returns, sees the flag */
    if (wake < 0)
        return -1;
    ps_thread_join(s->acceptor, PS_FOREVER, NULL);
    ps_thread_free(s->acceptor);
    close(wake);
    close(s->listen_fd);
    if (s->pool)                        /* every connection task has ended */
        return ps_executor_shutdown(s->pool, true, false);
    for (int i = 0; i < s->n_handlers; i++) {
        ps_thread_join(s->handlers[i], PS_FOREVER, NULL);
        ps_thread_free(s->handlers[i]);
    }
    return 0;
}

struct client {
    int n;
    uint16_t port;
};

/* Returns how many lines came back right. */
static void *client(void *arg)
{
    const struct client *c = arg;
    int fd = connect_to(c->port), good = 0;
    for (int i = 0; fd >= 0 && i < LINES; i++) {
        char line[64], upper[64], echo[64];
        size_t len = (size_t)snprintf(line, sizeof line, "client %d line %d\n", c->n, i);
        for (size_t k = 0; k < len; k++)
            upper[k] = (char)toupper((unsigned char)line[k]);
        if (send_all(fd, line, len) != 0 || recv_all(fd, echo, len) != 0)
            break;
        good += memcmp(echo, upper, len) == 0;
    }
    if (fd >= 0)
        close(fd);
    return (void *)(intptr_t)good;
}

/* Open file descriptors of this process, to see that the server closed its own. */
static int count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    int n = 0;
    if (!dir)
        return -1;                      /* no /proc: nothing to compare */
    while (readdir(dir))
        n++;
    closedir(dir);
    return n;
}

static int run(const char *title, ps_executor_t *pool)
{
    static struct client clients[CLIENTS];
    ps_thread_t *threads[CLIENTS];
    struct server s = { .listen_fd = -1 };
    int fds_before = count_open_fds(), echoed = 0;

    atomic_store(&connections_handled, 0);
    if (server_start(&s, pool) != 0)
        return 1;
    printf("%s: listening on 127.0.0.1:%u\n", title, (unsigned)s.port);
    for (int n = 0; n < CLIENTS; n++) {
        clients[n] = (struct client){ n, s.port };
        threads[n] = ps_thread_new(client, &clients[n], NULL);
        if (!threads[n] || ps_thread_start(threads[n]) != 0)
            return 1;
    }
    for (int n = 0; n < CLIENTS; n++) {
        void *good;
        ps_thread_join(threads[n], PS_FOREVER, &good);
        ps_thread_free(threads[n]);
        echoed += (int)(intptr_t)good;
    }
    if (server_stop(&s) != 0)
        return 1;
    int handled = atomic_load(&connections_handled), leaked = count_open_fds() - fds_before;
    printf("  %d clients x %d lines: %d echoed in upper case\n", CLIENTS, LINES, echoed);
    printf("  stopped: %d connections handled, %d file descriptors left open\n", handled, leaked);
    return echoed == CLIENTS * LINES && handled == CLIENTS && leaked == 0 ? 0 : 1;
}

int main(void)
{
    int failed = run("a thread per connection", NULL);

    ps_executor_t *pool = ps_executor_new(POOL_WORKERS, 0);
    if (!pool)
        return 1;
    failed |= run("a pool of 8 threads", pool);
    ps_executor_free(pool);
    return failed;
}
