// SPDX-License-Identifier: MIT
// boost_mq.cpp - the Boost.Interprocess message_queue side of bench_mpqueue
// (benchmark only; Boost is header-only here, Debian's libboost-dev).
//
//   boost_mq SIZE COUNT DEPTH CPU0 CPU1
//
// Forks 1 producer process and 1 consumer process around one
// boost::interprocess::message_queue of DEPTH messages of SIZE bytes. The
// producer sends COUNT messages (send: blocks while full); the consumer
// receives them one at a time (receive: blocks while empty) and checks each one's
// size and sequence number (first and last 8 bytes). The producer is pinned to
// CPU0 and the consumer to CPU1 (-1: not pinned), as bench_mpqueue pins its own
// pairs. The clock starts when both are ready and stops when the consumer has
// the last message. Prints one line that bench_mpqueue parses:
//
//   boost_mq size=64 depth=256 count=1000000 seconds=0.1234 msgs_per_s=8100000 ok
//
// Exit 0: measured and verified; 1: a message was wrong or missing; 2: setup failed.
#include <boost/interprocess/ipc/message_queue.hpp>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace bip = boost::interprocess;

namespace {

struct ctl {
    alignas(64) std::atomic<int> ready;
    std::atomic<int> go;
    alignas(64) uint64_t t_end;
    int bad;
    char why[128];
};

uint64_t now_ns()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

void stamp(unsigned char *buf, size_t size, uint64_t seq)
{
    std::memcpy(buf, &seq, 8);
    if (size >= 16)
        std::memcpy(buf + size - 8, &seq, 8);
}

bool check(const unsigned char *buf, size_t size, uint64_t seq)
{
    uint64_t a, b = seq;
    std::memcpy(&a, buf, 8);
    if (size >= 16)
        std::memcpy(&b, buf + size - 8, 8);
    return a == seq && b == seq;
}

int child(const char *name, bool producer, size_t size, uint64_t count, int cpu, ctl *c)
{
    try {
        bip::message_queue mq(bip::open_only, name);
        unsigned char *buf = static_cast<unsigned char *>(std::malloc(size));
        if (!buf)
            return 2;
        std::memset(buf, 0x5a, size);
        pin(cpu);
        c->ready.fetch_add(1);
        while (c->go.load(std::memory_order_acquire) == 0)
            sched_yield();
        if (producer) {
            for (uint64_t i = 0; i < count; i++) {
                stamp(buf, size, i);
                mq.send(buf, size, 0);
            }
        } else {
            bip::message_queue::size_type got;
            unsigned prio;
            for (uint64_t i = 0; i < count; i++) {
                mq.receive(buf, size, got, prio);
                if (got != size || !check(buf, size, i)) {
                    c->bad = 1;
                    std::snprintf(c->why, sizeof c->why, "message %llu: size %zu or sequence wrong",
                                  (unsigned long long)i, (size_t)got);
                    return 1;
                }
            }
            c->t_end = now_ns();
            if (mq.try_receive(buf, size, got, prio)) {
                c->bad = 1;
                std::snprintf(c->why, sizeof c->why, "a message beyond the %llu sent",
                              (unsigned long long)count);
                return 1;
            }
        }
        std::free(buf);
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "boost_mq: %s: %s\n", producer ? "producer" : "consumer", e.what());
        return 2;
    }
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc != 6) {
        std::fprintf(stderr, "usage: boost_mq SIZE COUNT DEPTH CPU0 CPU1\n");
        return 2;
    }
    size_t size = std::strtoull(argv[1], nullptr, 10);
    uint64_t count = std::strtoull(argv[2], nullptr, 10);
    size_t depth = std::strtoull(argv[3], nullptr, 10);
    int cpu[2] = { std::atoi(argv[4]), std::atoi(argv[5]) };
    if (size < 8 || count == 0 || depth == 0)
        return 2;

    char name[64];
    std::snprintf(name, sizeof name, "pysync_bench_boost_%ld", (long)getpid());
    bip::message_queue::remove(name);
    void *shm = mmap(nullptr, sizeof(ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED)
        return 2;
    ctl *c = new (shm) ctl();
    try {
        bip::message_queue mq(bip::create_only, name, depth, size);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "boost_mq: message_queue(%zu x %zu): %s\n", depth, size, e.what());
        return 2;
    }

    std::fflush(nullptr);
    pid_t pid[2], parent = getpid();
    for (int i = 0; i < 2; i++) {   // 0: producer, 1: consumer
        pid[i] = fork();
        if (pid[i] < 0) {
            bip::message_queue::remove(name);
            return 2;
        }
        if (pid[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(3);
            alarm(120);
            _exit(child(name, i == 0, size, count, cpu[i], c));
        }
    }
    while (c->ready.load() < 2)
        sched_yield();
    uint64_t t0 = now_ns();
    c->go.store(1, std::memory_order_release);
    int worst = 0;
    for (int left = 2; left > 0; left--) {   // a failed child: the other one is killed
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, 0)) < 0 && errno == EINTR)
            ;
        if (w < 0)
            break;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 2;
        if (code > worst)
            worst = code;
        if (code != 0)
            kill(w == pid[0] ? pid[1] : pid[0], SIGKILL);
    }
    bip::message_queue::remove(name);
    if (c->bad) {
        std::fprintf(stderr, "boost_mq: CORRECTNESS FAILURE: %s\n", c->why);
        return 1;
    }
    if (worst != 0)
        return worst == 1 ? 1 : 2;
    double secs = (double)(c->t_end - t0) / 1e9;
    std::printf("boost_mq size=%zu depth=%zu count=%llu seconds=%.6f msgs_per_s=%.0f ok\n", size,
                depth, (unsigned long long)count, secs, (double)count / secs);
    return 0;
}
