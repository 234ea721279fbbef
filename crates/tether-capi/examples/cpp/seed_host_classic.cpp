// The seed's C++ host ("Pipes for basic IPC between C/C++ and Python"),
// rebuilt on tether's C ABI in classic mode: the same foo and bar, the same output,
// no hand-written framing, no leaked descriptors.
//
//   g++ -I crates/tether-capi/include seed_host_classic.cpp target/debug/libtether_c.a -lpthread -ldl -lm -o seed_host_classic
//   ./seed_host_classic [SCRIPT]     (default: seed_main.py beside this file)
#include <iostream>
#include <string>

#include "tether.h"

static void reply(tether_reply *r, const std::string &s) { tether_reply_string(r, s.data(), s.size()); }

static void log_call(const char *name, const std::string &arg) {
    std::cout << "apiName: " << name << std::endl << "apiArg:  " << arg << std::endl;
    std::cout << "Waiting for message from python..." << std::endl;
}

static void foo_api(void *, const char *arg, size_t len, tether_reply *r) {
    log_call("foo", std::string(arg, len));
    reply(r, "Foo was called with arg " + std::string(arg, len));
}

static void bar_api(void *, const char *arg, size_t len, tether_reply *r) {
    log_call("bar", std::string(arg, len));
    reply(r, "Bar was called with arg " + std::string(arg, len));
}

int main(int argc, char **argv) {
    std::string self(argv[0]);
    std::string script = argc > 1 ? argv[1] : self.substr(0, self.find_last_of('/') + 1) + "seed_main.py";
    tether_host *host;
    tether_script *py;
    tether_outcome out{};
    if (tether_host_new(&host) || tether_host_set_classic(host, true) ||
        tether_host_add_string_function(host, "foo", foo_api, nullptr) ||
        tether_host_add_string_function(host, "bar", bar_api, nullptr) || tether_script_new(script.c_str(), &py)) {
        std::cout << "Couldn't set up the host" << std::endl;
        return 1;
    }
    std::cout << "Waiting for message from python..." << std::endl;
    tether_result r = tether_host_run(host, py, &out);
    if (r != TETHER_RESULT_OK) {
        char message[512];
        tether_last_error(message, sizeof message);
        std::cout << "Script failed: " << message << std::endl;
    } else {
        std::cout << "EOF waiting for message, script ended" << std::endl;
    }
    tether_script_free(py);
    tether_host_free(host);
    return r == TETHER_RESULT_OK ? out.exit_code : 1;
}
