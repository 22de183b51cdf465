/*
 * lllt-fw-host: the firmware core on a POSIX host, with the C plant of a simulated cap,
 * its UART on a TCP socket or a pseudo-terminal, so that lllt (or any serial client)
 * drives it exactly as a cap:
 *
 *     lllt-fw-host --tcp 127.0.0.1:0 --speed 10
 *     serving reference-cap at socket://127.0.0.1:40123 (speed 10x, seed 0); Ctrl-C to stop
 *     lllt run aga-red-eod-25min --device socket://127.0.0.1:40123 --yes
 *
 * The first line on stdout always says where it serves (the same line as `lllt sim
 * serve`), so a test or a script can start it and read the address. Device time runs at
 * --speed × real time; HELLO_INFO's clock_rate says so to the host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "lllt_boards.h"
#include "lllt_core.h"
#include "plant.h"

#define PENDING_MAX (64 * 1024)

static lllt_core_t CORE;
static plant_t PLANT;
static ll_board_t HW;
static const lllt_board_desc_t *DESC;

static double speed = 1.0;
static double t0_real;       /* real seconds at start */
static uint64_t boot_at;     /* plant ms at the last boot */
static int client = -1;      /* the connected host (socket, or the pty master) */
static int listener = -1;
static bool is_pty;
static uint8_t pending[PENDING_MAX];
static size_t pending_len;
static uint64_t dropped_out;
static uint8_t nv[LLLT_NV_SIZE];
static int state_fd = -1;
static uint32_t seed;
static uint64_t abs_now; /* plant ms now */
static volatile sig_atomic_t stop;

/* --- time ------------------------------------------------------------------------------ */

static double real_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t plant_now(void) { return (uint64_t)((real_s() - t0_real) * speed * 1000.0); }

/* --- HAL ------------------------------------------------------------------------------- */

uint32_t hal_now_ms(void *b)
{
    (void)b;
    return (uint32_t)(abs_now - boot_at);
}

void hal_sense(void *b, lllt_sense_t *s)
{
    (void)b;
    /* the plant catches up to this tick under the outputs of the interval that ended */
    plant_advance(&PLANT, (uint32_t)(boot_at + CORE.tick_ms_now));
    plant_sense(&PLANT, s);
}
void hal_output_sense(void *b, uint16_t *q, uint8_t n)
{
    (void)b;
    plant_output_sense(&PLANT, q, n);
}
void hal_pwm_apply(void *b, const lllt_pwm_t *p, uint8_t n)
{
    (void)b;
    plant_pwm_apply(&PLANT, p, n);
}
void hal_master_set(void *b, bool on)
{
    (void)b;
    plant_master_set(&PLANT, on);
}
bool hal_driver_test(void *b)
{
    (void)b;
    return plant_driver_test(&PLANT);
}

static void flush_pending(void)
{
    while (client >= 0 && pending_len) {
        ssize_t n = write(client, pending, pending_len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            if (is_pty && errno == EIO) {
                return; /* nobody on the slave side now */
            }
            pending_len = 0;
            return;
        }
        memmove(pending, pending + n, pending_len - (size_t)n);
        pending_len -= (size_t)n;
    }
}

void hal_uart_write(void *b, const uint8_t *d, uint32_t n)
{
    (void)b;
    if (client < 0 || plant_link_dropped(&PLANT, (uint32_t)abs_now)) {
        dropped_out += n;
        return;
    }
    if (pending_len + n > PENDING_MAX) {
        dropped_out += pending_len + n; /* nobody is reading: a UART drops it too */
        pending_len = 0;
        return;
    }
    memcpy(pending + pending_len, d, n);
    float rate = plant_corrupt_rate(&PLANT, (uint32_t)abs_now);
    if (rate > 0) {
        for (uint32_t i = 0; i < n * 8; i++) {
            if ((float)(plant_rand(&PLANT) >> 8) / 16777216.0f < rate) {
                pending[pending_len + i / 8] ^= (uint8_t)(1u << (i % 8));
            }
        }
    }
    pending_len += n;
    flush_pending();
}

bool hal_link_wired(void *b)
{
    (void)b;
    return true;
}

bool hal_nv_read(void *b, uint32_t off, uint8_t *buf, uint32_t len)
{
    (void)b;
    if (off + len > sizeof nv) {
        return false;
    }
    memcpy(buf, nv + off, len);
    return true;
}

bool hal_nv_write(void *b, uint32_t off, const uint8_t *buf, uint32_t len)
{
    (void)b;
    if (off + len > sizeof nv) {
        return false;
    }
    memcpy(nv + off, buf, len);
    if (state_fd >= 0 && pwrite(state_fd, buf, len, off) != (ssize_t)len) {
        return false;
    }
    return true;
}

bool hal_random(void *b, uint8_t *buf, uint32_t len)
{
    (void)b;
    return getrandom(buf, len, 0) == (ssize_t)len; /* the kernel's CSPRNG */
}

bool hal_button_held(void *b)
{
    (void)b;
    return false;
}

void hal_watchdog_kick(void *b) { (void)b; }

void hal_trap(void *b, const char *file, int line)
{
    (void)b;
    lllt_pwm_t off[LLLT_MAX_CHANNELS] = {{0, 10000, 0}};
    plant_master_set(&PLANT, false);
    plant_pwm_apply(&PLANT, off, HW.n_ch);
    fprintf(stderr, "lllt-fw-host: broken invariant at %s:%d; emitters off, stopping\n", file,
            line);
    exit(70);
}

/* --- set-up ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lllt-fw-host (--tcp HOST:PORT | --pty [--link PATH]) [options]\n"
            "\n"
            "The lllt firmware core with a simulated cap's plant, on a TCP socket or a\n"
            "pseudo-terminal. The first line printed says where it serves.\n"
            "\n"
            "  --tcp HOST:PORT   listen there (port 0: any free port)\n"
            "  --pty             open a pseudo-terminal (serial:///dev/pts/N)\n"
            "  --link PATH       with --pty, also make PATH a symbolic link to it\n"
            "  --profile NAME    reference-cap (default), laser-cap-678, led-helmet-rgb\n"
            "  --speed N         device time runs N x real time (default 1)\n"
            "  --seed N          seed of the plant's noise and corruption (default 0)\n"
            "  --faults SPEC     simulator faults, e.g. overtemp@300s,head_off@10s+5s,reboot@1min\n"
            "  --ambient C       ambient temperature in degrees C (default 25)\n"
            "  --state FILE      keep the persistent storage (records, boot count, key) in FILE\n"
            "  --key HEX         the device's own 32-byte key (64 hex digits); without it\n"
            "                    the device is fresh and takes the development key\n"
            "  --boot-event      send EVENT BOOT at power-on (off: as the simulator)\n"
            "\n"
            "example: lllt-fw-host --tcp 127.0.0.1:0 --speed 10\n");
}

static void die(const char *what, const char *advice)
{
    fprintf(stderr, "lllt-fw-host: %s\n%s%s", what, advice ? advice : "", advice ? "\n" : "");
    exit(2);
}

static int listen_tcp(const char *spec, char *url, size_t url_len)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof host || !colon[1]) {
        die("--tcp needs HOST:PORT", "Example: --tcp 127.0.0.1:0 (port 0 picks a free port).");
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        die("--tcp: the port must be a number from 0 to 65535", "Example: --tcp 127.0.0.1:7878");
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "--tcp: cannot use host %s: %s", host, gai_strerror(rc));
        die(msg, "Use an address of this machine, such as 127.0.0.1.");
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "--tcp: cannot listen on %s: %s", spec, strerror(errno));
        die(msg, "Pick another port, or port 0 for a free one.");
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char hbuf[128], pbuf[16];
    getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof hbuf, pbuf, sizeof pbuf,
                NI_NUMERICHOST | NI_NUMERICSERV);
    if (ss.ss_family == AF_INET6) {
        snprintf(url, url_len, "socket://[%s]:%s", hbuf, pbuf);
    } else {
        snprintf(url, url_len, "socket://%s:%s", hbuf, pbuf);
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static int slave_keep = -1;

static int open_pty(const char *link, char *url, size_t url_len)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) {
        die("cannot open a pseudo-terminal", "Use --tcp HOST:PORT instead.");
    }
    const char *name = ptsname(m);
    /* raw on the slave, and keep it open so a client closing it never hangs up the master */
    slave_keep = open(name, O_RDWR | O_NOCTTY);
    struct termios t;
    if (slave_keep >= 0 && tcgetattr(slave_keep, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(slave_keep, TCSANOW, &t);
    }
    const char *shown = name;
    if (link) {
        unlink(link);
        if (symlink(name, link) != 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "--link: cannot create %s: %s", link, strerror(errno));
            die(msg, "Give a path in a directory you can write.");
        }
        shown = link;
    }
    snprintf(url, url_len, "serial://%s", shown);
    fcntl(m, F_SETFL, O_NONBLOCK);
    return m;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void rx_bytes(const uint8_t *d, size_t n)
{
    if (plant_link_dropped(&PLANT, (uint32_t)abs_now)) {
        return;
    }
    float rate = plant_corrupt_rate(&PLANT, (uint32_t)abs_now);
    for (size_t i = 0; i < n; i++) {
        uint8_t b = d[i];
        if (rate > 0) {
            for (int k = 0; k < 8; k++) {
                if ((float)(plant_rand(&PLANT) >> 8) / 16777216.0f < rate) {
                    b ^= (uint8_t)(1u << k);
                }
            }
        }
        if (!core_rx_isr(&CORE, b)) {
            core_task(&CORE); /* the main loop drains between interrupts */
            (void)core_rx_isr(&CORE, b);
        }
    }
}

int main(int argc, char **argv)
{
    const char *tcp = NULL, *link = NULL, *profile = "reference-cap", *faults = NULL;
    const char *state = NULL, *key_hex = NULL;
    bool pty = false, boot_event = false;
    double ambient = 25.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(name)                                                                           \
    if (!v) {                                                                                \
        die(name " needs a value", "Run lllt-fw-host --help for the options.");              \
    }                                                                                        \
    i++
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tcp")) {
            TAKE("--tcp");
            tcp = v;
        } else if (!strcmp(a, "--pty")) {
            pty = true;
        } else if (!strcmp(a, "--link")) {
            TAKE("--link");
            link = v;
        } else if (!strcmp(a, "--profile")) {
            TAKE("--profile");
            profile = v;
        } else if (!strcmp(a, "--speed")) {
            TAKE("--speed");
            char *end;
            speed = strtod(v, &end);
            if (!strcmp(v, "max")) {
                die("--speed max is for the in-process simulator or fw:// only",
                    "A served device needs a real-time factor such as --speed 1 or --speed 50.");
            }
            if (*end == 'x') {
                end++;
            }
            if (*end || !(speed > 0) || speed > 100000) {
                die("--speed must be a positive factor", "Use a factor such as 1, 10 or 0.5.");
            }
        } else if (!strcmp(a, "--seed")) {
            TAKE("--seed");
            seed = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--faults")) {
            TAKE("--faults");
            faults = v;
        } else if (!strcmp(a, "--ambient")) {
            TAKE("--ambient");
            char *end;
            ambient = strtod(v, &end);
            if (*end || ambient < -20 || ambient > 60) {
                die("--ambient must be a temperature from -20 to 60 (degrees C)", NULL);
            }
        } else if (!strcmp(a, "--state")) {
            TAKE("--state");
            state = v;
        } else if (!strcmp(a, "--key")) {
            TAKE("--key");
            key_hex = v;
        } else if (!strcmp(a, "--boot-event")) {
            boot_event = true;
        } else {
            char msg[300];
            snprintf(msg, sizeof msg, "unknown option %.200s", a);
            die(msg, "Run lllt-fw-host --help for the options.");
        }
    }
    if (!!tcp == pty) {
        die("say where to serve: --tcp HOST:PORT or --pty (one of them)",
            "Example: lllt-fw-host --tcp 127.0.0.1:0 --speed 10");
    }
    for (unsigned i = 0; i < lllt_board_count; i++) {
        if (!strcmp(lllt_boards[i].name, profile)) {
            DESC = &lllt_boards[i];
        }
    }
    if (!DESC) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown profile %.200s", profile);
        die(msg, "Profiles: reference-cap, laser-cap-678, led-helmet-rgb.");
    }
    if (!core_board_parse(&HW, DESC->hello, DESC->hello_len)) {
        die("the board table does not parse in this build (too many channels?)", NULL);
    }
    uint8_t key[LLLT_KEY_SIZE];
    if (key_hex) {
        if (strlen(key_hex) != 2 * LLLT_KEY_SIZE) {
            die("--key must be 64 hex digits (a 32-byte key)", NULL);
        }
        for (int i = 0; i < LLLT_KEY_SIZE; i++) {
            int h = hexval(key_hex[2 * i]), l = hexval(key_hex[2 * i + 1]);
            if (h < 0 || l < 0) {
                die("--key must be 64 hex digits (a 32-byte key)", NULL);
            }
            key[i] = (uint8_t)(h << 4 | l);
        }
    }
    plant_init(&PLANT, DESC, &HW, (float)ambient, seed);
    if (faults) {
        char err[200];
        if (!plant_parse_faults(&PLANT, faults, err, sizeof err)) {
            die(err, "Grammar: name[:arg][@time][+duration], e.g. overtemp@300s,led_open:3@10s");
        }
    }
    memset(nv, 0xFF, sizeof nv);
    if (state) {
        state_fd = open(state, O_RDWR | O_CREAT, 0600);
        if (state_fd < 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "--state: cannot open %.400s: %s", state, strerror(errno));
            die(msg, "Give a file in a directory you can write.");
        }
        ssize_t n = pread(state_fd, nv, sizeof nv, 0);
        if (n < (ssize_t)sizeof nv) {
            memset(nv + (n > 0 ? n : 0), 0xFF, sizeof nv - (size_t)(n > 0 ? n : 0));
            if (pwrite(state_fd, nv, sizeof nv, 0) != (ssize_t)sizeof nv) {
                die("--state: cannot write the state file", NULL);
            }
        }
    }
    ll_config_t cfg = {
        .tick_ms = DESC->tick_ms,
        .clock_rate = (uint32_t)(speed * 1000.0 + 0.5),
        .brownout_mv = DESC->brownout_mv,
        .quiet_power_on = !boot_event,
        .key = key_hex ? key : NULL,
    };
    char url[400];
    if (tcp) {
        listener = listen_tcp(tcp, url, sizeof url);
    } else {
        client = open_pty(link, url, sizeof url);
        is_pty = true;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    t0_real = real_s();
    abs_now = 0;
    boot_at = 0;
    core_init(&CORE, NULL, &HW, &cfg);
    core_boot(&CORE, LL_BOOT_POWER_ON);
    printf("serving %s at %s (speed %gx, seed %u); Ctrl-C to stop\n", DESC->name, url, speed,
           seed);
    fflush(stdout);

    uint8_t buf[4096];
    while (!stop) {
        abs_now = plant_now();
        /* wait for input, output room, or the next tick / sample */
        uint64_t due = boot_at + core_next_due(&CORE);
        double wait_ms = due > abs_now ? (double)(due - abs_now) / speed : 0.0;
        if (wait_ms > 0.0 && wait_ms < 1.0) {
            /* at high speed, wake at most once a real millisecond and run the ticks due
             * then, each at its own device time: the device behaves the same, and the
             * host it serves keeps the CPU it needs */
            wait_ms = 1.0;
        }
        struct pollfd pf[2];
        int n = 0;
        int fd_in = client >= 0 ? client : listener;
        pf[n++] = (struct pollfd){fd_in, (short)(POLLIN | (pending_len ? POLLOUT : 0)), 0};
        struct timespec ts = {(time_t)(wait_ms / 1000.0),
                              (long)((wait_ms - 1000.0 * (time_t)(wait_ms / 1000.0)) * 1e6)};
        int r = ppoll(pf, (nfds_t)n, &ts, NULL);
        if (r < 0 && errno != EINTR) {
            perror("lllt-fw-host: poll");
            return 1;
        }
        abs_now = plant_now();
        if (r > 0 && (pf[0].revents & POLLOUT)) {
            flush_pending();
        }
        if (r > 0 && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (client < 0) {
                int c = accept(listener, NULL, NULL);
                if (c >= 0) {
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    fcntl(c, F_SETFL, O_NONBLOCK);
                    client = c;
                    pending_len = 0;
                }
            } else {
                ssize_t k = read(client, buf, sizeof buf);
                if (k > 0) {
                    /* bring the device to now first: a request is answered at its time */
                    core_task(&CORE);
                    rx_bytes(buf, (size_t)k);
                } else if (k == 0 || (errno != EAGAIN && errno != EINTR && !(is_pty && errno == EIO))) {
                    if (!is_pty) {
                        close(client);
                        client = -1;
                        pending_len = 0;
                        core_link_closed(&CORE);
                    }
                } else if (is_pty && errno == EIO) {
                    /* no client on the slave: wait instead of spinning */
                    struct timespec nap = {0, 2000000};
                    nanosleep(&nap, NULL);
                }
            }
        }
        core_task(&CORE);
        if (CORE.session && !PLANT.armed) {
            plant_arm(&PLANT, (uint32_t)(boot_at + CORE.records[0].start_ms));
        }
        if (plant_take_reboot(&PLANT)) {
            /* a watchdog reset: RAM lost, emitters off, device time from 0 again */
            uint32_t T = DESC->tick_ms;
            boot_at = (abs_now / T) * T;
            core_boot(&CORE, LL_BOOT_WATCHDOG);
            core_link_closed(&CORE);
        }
    }
    if (link) {
        unlink(link);
    }
    fprintf(stderr, "lllt-fw-host: stopped (%llu bytes of output dropped)\n",
            (unsigned long long)dropped_out);
    return 0;
}
