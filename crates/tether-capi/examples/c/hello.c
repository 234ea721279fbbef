/* A C host for a Python script: registers functions, runs hello.py, then
 * drives a plugin-style script's exports. Build and run:
 *
 *   cargo build -p tether-capi
 *   cc -I crates/tether-capi/include crates/tether-capi/examples/c/hello.c \
 *      target/debug/libtether_c.a -lpthread -ldl -lm -o hello
 *   ./hello crates/tether-capi/examples/c/hello.py crates/tether-capi/examples/c/plugin.py
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether.h"

/* Prints why the last tether call failed and exits. */
static void check(tether_result r, const char *what) {
    if (r != TETHER_RESULT_OK) {
        char message[512];
        tether_last_error(message, sizeof message);
        fprintf(stderr, "hello: %s failed: %s: %s\n", what, tether_result_name(r), message);
        exit(1);
    }
}

/* add(a, b): two integers in, their sum out. */
static void add(void *user_data, const tether_call *call, tether_reply *reply) {
    (void)user_data;
    int64_t a, b;
    if (tether_call_arg_count(call) != 2 || tether_call_arg_int(call, 0, &a) != TETHER_RESULT_OK ||
        tether_call_arg_int(call, 1, &b) != TETHER_RESULT_OK) {
        tether_reply_error(reply, "TypeError", "add() takes two integers");
        return;
    }
    tether_reply_int(reply, a + b);
}

/* greet(name): a string function; user_data counts the calls. */
static void greet(void *user_data, const char *name, size_t len, tether_reply *reply) {
    int *calls = user_data;
    char text[256];
    int n = snprintf(text, sizeof text, "Hello, %.*s! (call %d)", (int)len, name, ++*calls);
    tether_reply_string(reply, text, (size_t)n);
}

/* checksum(data): bytes in, a JSON object out. */
static void checksum(void *user_data, const tether_call *call, tether_reply *reply) {
    (void)user_data;
    const uint8_t *data;
    size_t len;
    if (tether_call_arg_bytes(call, 0, &data, &len) != TETHER_RESULT_OK) {
        tether_reply_error(reply, "TypeError", "checksum() takes bytes");
        return;
    }
    unsigned sum = 0;
    for (size_t i = 0; i < len; i++) sum = (sum * 31 + data[i]) & 0xffffff;
    char json[64];
    int n = snprintf(json, sizeof json, "{\"length\": %zu, \"sum\": %u}", len, sum);
    tether_reply_json(reply, json, (size_t)n);
}

int main(int argc, char **argv) {
    const char *script_path = argc > 1 ? argv[1] : "hello.py";
    const char *plugin_path = argc > 2 ? argv[2] : "plugin.py";
    int greetings = 0;

    tether_host *host;
    check(tether_host_new(&host), "tether_host_new");
    check(tether_host_add_function(host, "add", add, NULL), "add_function(add)");
    check(tether_host_add_string_function(host, "greet", greet, &greetings), "add_string_function(greet)");
    check(tether_host_add_function(host, "checksum", checksum, NULL), "add_function(checksum)");

    /* Run a script to its end. */
    tether_script *script;
    check(tether_script_new(script_path, &script), "tether_script_new");
    check(tether_script_add_arg(script, "from C"), "tether_script_add_arg");
    tether_outcome outcome;
    check(tether_host_run(host, script, &outcome), "tether_host_run");
    printf("hello.py ended with code %d after %llu calls (%d greetings)\n", outcome.exit_code,
           (unsigned long long)outcome.calls, greetings);
    tether_script_free(script);
    if (outcome.exit_code != 0) return 1;

    /* Spawn a plugin and call its exports. */
    tether_script *plugin_script;
    check(tether_script_new(plugin_path, &plugin_script), "tether_script_new(plugin)");
    tether_child *plugin;
    check(tether_host_spawn(host, plugin_script, &plugin), "tether_host_spawn");

    /* One host serves many scripts at once: a second plugin beside the first. */
    tether_child *second;
    check(tether_host_spawn(host, plugin_script, &second), "second tether_host_spawn");
    tether_value *other;
    check(tether_child_call(second, "square", "[5]", 3, 0, &other), "call square on the second");
    const char *other_json;
    size_t other_len;
    check(tether_value_json(other, &other_json, &other_len), "tether_value_json");
    printf("two at once: square(5) = %s\n", other_json);
    tether_value_free(other);
    tether_child_free(second);
    tether_result r;

    tether_value *value;
    check(tether_child_call(plugin, "square", "[12]", 4, 0, &value), "call square");
    const char *json;
    size_t json_len;
    check(tether_value_json(value, &json, &json_len), "tether_value_json");
    printf("square(12) = %s\n", json);
    tether_value_free(value);

    r = tether_child_call(plugin, "explode", "[]", 2, 0, &value);
    char message[512];
    tether_last_error(message, sizeof message);
    printf("explode(): %s: %s\n", tether_result_name(r), message);

    check(tether_child_shutdown(plugin, 2000, &outcome), "tether_child_shutdown");
    printf("plugin ended with code %d\n", outcome.exit_code);
    r = tether_child_call(plugin, "square", "[1]", 3, 0, &value);
    printf("calling after shutdown: %s\n", tether_result_name(r));
    tether_child_free(plugin);
    tether_script_free(plugin_script);

    /* NULL arguments give a status code. */
    printf("NULL host: %s\n", tether_result_name(tether_host_run(NULL, NULL, &outcome)));

    tether_host_free(host);
    return 0;
}
