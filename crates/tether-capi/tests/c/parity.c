#define _POSIX_C_SOURCE 200809L
/* Everything a Rust host can configure and observe, from C: many scripts at
 * once, settings a script can see, kill and the report, line and log
 * callbacks, a nested call from a C callback, user data freed exactly once,
 * bytes into an export, named arguments, stubs, a sandbox, a pool and warm
 * start. Prints one line per check; tests/c_examples.rs reads them.
 * Usage: parity SCRIPT STUBS_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>

#include "tether.h"

static void check(tether_result r, const char *what) {
    if (r != TETHER_RESULT_OK) {
        char message[1024];
        tether_last_error(message, sizeof message);
        fprintf(stderr, "%s: %s: %s\n", what, tether_result_name(r), message);
        exit(1);
    }
}

typedef struct {
    int freed;
    int calls;
    pthread_mutex_t lock;
    char log[512];
    char lines[512];
} state;

static void free_state(void *user_data) {
    state *s = user_data;
    pthread_mutex_lock(&s->lock);
    s->freed += 1;
    pthread_mutex_unlock(&s->lock);
}

static void add(void *user_data, const tether_call *call, tether_reply *reply) {
    state *s = user_data;
    int64_t a, b;
    if (tether_call_arg_int(call, 0, &a) != TETHER_RESULT_OK || tether_call_arg_int(call, 1, &b) != TETHER_RESULT_OK) {
        tether_reply_error(reply, "TypeError", "add() takes two integers");
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->calls += 1;
    pthread_mutex_unlock(&s->lock);
    tether_reply_int(reply, a + b);
}

/* Calls the calling script's export double() from inside the callback. */
static void twice_via_script(void *user_data, const tether_call *call, tether_reply *reply) {
    (void)user_data;
    int64_t x;
    if (tether_call_arg_int(call, 0, &x) != TETHER_RESULT_OK) {
        tether_reply_error(reply, "TypeError", "an integer, please");
        return;
    }
    char args[64];
    int n = snprintf(args, sizeof args, "[%lld]", (long long)x);
    tether_value *value;
    if (tether_call_script(call, "double", args, (size_t)n, 5000, &value) != TETHER_RESULT_OK) {
        char message[512];
        tether_last_error(message, sizeof message);
        tether_reply_error(reply, "RuntimeError", message);
        return;
    }
    const char *json;
    size_t len;
    tether_value_json(value, &json, &len);
    tether_reply_json(reply, json, len);
    tether_value_free(value);
}

static void on_log(void *user_data, uint32_t pid, int64_t level, const char *logger, const char *message) {
    (void)pid;
    state *s = user_data;
    pthread_mutex_lock(&s->lock);
    snprintf(s->log, sizeof s->log, "%lld %s %s", (long long)level, logger, message);
    pthread_mutex_unlock(&s->lock);
}

static void on_line(void *user_data, const char *line, size_t len) {
    state *s = user_data;
    pthread_mutex_lock(&s->lock);
    size_t used = strlen(s->lines);
    snprintf(s->lines + used, sizeof s->lines - used, "[%.*s]", (int)len, line);
    pthread_mutex_unlock(&s->lock);
}

static tether_script *script_of(const char *path, const char *mode) {
    tether_script *script;
    check(tether_script_new(path, &script), "tether_script_new");
    check(tether_script_add_arg(script, mode), "tether_script_add_arg");
    return script;
}

static void print_json(const char *label, tether_value *value) {
    const char *json;
    size_t len;
    check(tether_value_json(value, &json, &len), "tether_value_json");
    printf("%s %s\n", label, json);
    tether_value_free(value);
}

typedef struct {
    const tether_host *host;
    const char *path;
    int64_t input;
    char answer[64];
} worker;

/* Each thread spawns its own script from the shared host. */
static void *spawn_and_call(void *arg) {
    worker *w = arg;
    tether_script *script = script_of(w->path, "serve");
    tether_child *child;
    check(tether_host_spawn(w->host, script, &child), "spawn from a thread");
    char args[32];
    int n = snprintf(args, sizeof args, "[%lld]", (long long)w->input);
    tether_value *value;
    check(tether_child_call(child, "double", args, (size_t)n, 0, &value), "double from a thread");
    const char *json;
    size_t len;
    tether_value_json(value, &json, &len);
    snprintf(w->answer, sizeof w->answer, "%s", json);
    tether_value_free(value);
    tether_child_free(child);
    tether_script_free(script);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: parity SCRIPT STUBS_DIR\n");
        return 2;
    }
    const char *path = argv[1];
    state s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);

    tether_host *host;
    check(tether_host_new(&host), "tether_host_new");
    check(tether_host_add_function_owned(host, "add(a, b)", add, &s, free_state), "add");
    check(tether_host_set_doc(host, "Adds two integers."), "doc");
    check(tether_host_add_function(host, "twice_via_script(x)", twice_via_script, NULL), "twice_via_script");
    check(tether_host_set_spin_us(host, 7), "spin");
    check(tether_host_set_shared_memory(host, 1 << 20), "shared memory");
    check(tether_host_set_process_group(host, true), "process group");
    check(tether_host_set_forward_logs(host, on_log, &s, NULL), "logs");
    check(tether_host_set_max_depth(host, 8), "depth");

    /* A bad signature is refused when it is registered. */
    tether_result r = tether_host_add_function(host, "broken(a,", add, &s);
    printf("bad signature: %s\n", tether_result_name(r));

    /* Settings the script sees, named arguments, logs, stdout captured, stderr by line. */
    tether_script *settings = script_of(path, "settings");
    check(tether_script_set_stdout(settings, TETHER_STDIO_CAPTURE), "stdout");
    check(tether_script_on_stderr_line(settings, on_line, &s, NULL), "stderr lines");
    tether_child *child;
    check(tether_host_spawn(host, settings, &child), "spawn settings");
    tether_report *report;
    check(tether_child_end(child, 0, &report), "end settings");
    const uint8_t *out;
    size_t out_len;
    check(tether_report_stdout(report, &out, &out_len), "report stdout");
    printf("%.*s", (int)out_len, (const char *)out);
    printf("exit %d, calls %llu, check \"%s\"\n", tether_report_exit_code(report),
           (unsigned long long)tether_report_calls(report), tether_report_check(report));
    tether_report_free(report);
    tether_child_free(child);
    tether_script_free(settings);
    pthread_mutex_lock(&s.lock);
    printf("log: %s\n", s.log);
    printf("lines: %s\n", s.lines);
    pthread_mutex_unlock(&s.lock);

    /* Many scripts at once, spawned from three threads. */
    worker workers[3] = {{host, path, 1, ""}, {host, path, 2, ""}, {host, path, 3, ""}};
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, spawn_and_call, &workers[i]);
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    printf("three at once: %s %s %s\n", workers[0].answer, workers[1].answer, workers[2].answer);

    /* Bytes into an export, a nested call through a C callback. */
    tether_script *serve = script_of(path, "serve");
    check(tether_host_spawn(host, serve, &child), "spawn serve");
    tether_value *value;
    const uint8_t blob[] = {1, 2, 3, 4, 5};
    const char *wire = "[{\"$bytes\":[0,5]}]";
    check(tether_child_call_wire(child, "length", wire, strlen(wire), blob, sizeof blob, 0, &value), "length");
    print_json("bytes length:", value);
    check(tether_child_call(child, "nested", "[21]", 4, 0, &value), "nested");
    print_json("nested:", value);
    bool finished = true;
    check(tether_child_is_finished(child, &finished), "is_finished");
    printf("finished while serving: %s\n", finished ? "yes" : "no");
    /* A generous grace for valgrind; shutdown returns as soon as the script exits. */
    check(tether_child_end(child, 10000, &report), "shutdown serve");
    printf("shutdown exit %d\n", tether_report_exit_code(report));
    if (tether_report_exit_code(report) != 0) printf("shutdown: %s\n", tether_report_check(report));
    tether_report_free(report);
    tether_child_free(child);

    /* Kill and the report. */
    tether_script *sleeper = script_of(path, "sleep");
    check(tether_host_spawn(host, sleeper, &child), "spawn sleep");
    check(tether_child_kill(child), "kill");
    check(tether_child_end(child, 0, &report), "end killed");
    const char *killed_by = tether_report_killed_by(report);
    printf("killed: signal %d, exit %d, killed_by %s, check mentions SIGKILL: %s\n", tether_report_signal(report),
           tether_report_exit_code(report), killed_by ? "set" : "NULL",
           strstr(tether_report_check(report), "SIGKILL") ? "yes" : "no");
    tether_report_free(report);
    tether_child_free(child);
    tether_script_free(sleeper);

    /* Stubs. */
    check(tether_host_write_stubs(host, argv[2]), "stubs");
    printf("stubs written\n");

    /* A sandbox: a denial inside, a limit that ends a script. */
    tether_sandbox *sandbox;
    check(tether_sandbox_new(&sandbox), "sandbox");
    check(tether_sandbox_set_cpu_seconds(sandbox, 1), "cpu");
    tether_script *shadow = script_of(path, "shadow");
    check(tether_script_set_sandbox(shadow, sandbox), "sandbox the script");
    check(tether_script_set_stdout(shadow, TETHER_STDIO_CAPTURE), "stdout");
    r = tether_host_spawn(host, shadow, &child);
    if (r == TETHER_RESULT_SANDBOX) {
        /* Strict enforcement on a kernel (or under valgrind, which does not
         * know Landlock's system calls) that lacks a part: refused, named. */
        char message[1024];
        tether_last_error(message, sizeof message);
        printf("sandbox refused: %s\n", message);
        tether_script_free(shadow);
        tether_sandbox_free(sandbox);
        goto pool;
    }
    check(r, "spawn shadow");
    check(tether_child_end(child, 0, &report), "end shadow");
    check(tether_report_stdout(report, &out, &out_len), "shadow stdout");
    printf("sandboxed: %.*s", (int)out_len, (const char *)out);
    tether_report_free(report);
    tether_child_free(child);
    tether_script_free(shadow);
    tether_script *spin = script_of(path, "spin");
    check(tether_script_set_sandbox(spin, sandbox), "sandbox the spinner");
    check(tether_host_spawn(host, spin, &child), "spawn spin");
    check(tether_child_end(child, 0, &report), "end spin");
    printf("limit: %s\n", tether_report_limit(report) ? tether_report_limit(report) : "NULL");
    tether_report_free(report);
    tether_child_free(child);
    tether_script_free(spin);
    tether_sandbox_free(sandbox);

pool:
    /* A pool, warm. */
    tether_zygote *zygote;
    check(tether_zygote_new(host, "json", &zygote), "zygote");
    check(tether_script_set_warm(serve, zygote), "warm");
    tether_pool *pool;
    check(tether_pool_new(host, serve, 2, &pool), "pool");
    long long sum = 0;
    for (int i = 0; i < 20; i++) {
        char args[16];
        int n = snprintf(args, sizeof args, "[%d]", i);
        check(tether_pool_call(pool, "double", args, (size_t)n, false, &value), "pool call");
        const char *json;
        size_t len;
        tether_value_json(value, &json, &len);
        sum += atoll(json);
        tether_value_free(value);
    }
    tether_pool_stats stats;
    check(tether_pool_get_stats(pool, &stats), "stats");
    printf("pool: sum %lld, calls %llu, live %zu\n", sum, (unsigned long long)stats.calls, stats.live);
    check(tether_pool_shutdown(pool, 2000), "pool shutdown");
    tether_pool_free(pool);
    tether_zygote_free(zygote);
    tether_script_free(serve);

    /* The graceful stop: on SIGTERM every script is asked to stop, and the
     * program goes on (here: raises it itself). */
    tether_stop *stop;
    check(tether_stop_on_signals(10000, &stop), "stop on signals");
    tether_script *served = script_of(path, "serve");
    check(tether_host_spawn(host, served, &child), "spawn for the stop");
    tether_value *ready_value;
    check(tether_child_call(child, "double", "[1]", 3, 0, &ready_value), "ready");
    tether_value_free(ready_value);
    raise(SIGTERM);
    check(tether_stop_wait(stop), "stop wait");
    check(tether_child_end(child, 0, &report), "end after the stop");
    printf("stopped by signal %d: exit %d\n", tether_stop_signal(stop), tether_report_exit_code(report));
    tether_report_free(report);
    tether_child_free(child);
    tether_script_free(served);
    tether_stop_free(stop);

    tether_host_free(host);
    /* The last script's serving thread may let go of the function a moment later. */
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&s.lock);
        int freed = s.freed;
        pthread_mutex_unlock(&s.lock);
        if (freed) break;
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL);
    }
    pthread_mutex_lock(&s.lock);
    printf("user data freed %d time(s) after %d add call(s)\n", s.freed, s.calls);
    pthread_mutex_unlock(&s.lock);
    pthread_mutex_destroy(&s.lock);
    return 0;
}
