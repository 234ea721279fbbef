// Two plugins served at once by one host: one crashes mid-way, the host
// reports how it ended (signal, the call it was in, its last stderr) and
// goes on serving the other.
//
//   g++ -std=c++17 -I crates/tether-capi/include multi_script.cpp target/debug/libtether_c.a -lpthread -ldl -lm -o multi_script
//   ./multi_script DIR     (DIR holds crashing.py and steady.py)
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "tether.hpp"

int main(int argc, char **argv) {
    std::string dir = argc > 1 ? argv[1] : ".";
    std::mutex out;
    tether::Host host;
    host.function("note(text)", [&out](std::string_view text) {
        std::lock_guard<std::mutex> lock(out);
        std::cout << "note: " << text << std::endl;
    });
    tether::Child crashing = host.spawn(tether::Script(dir + "/crashing.py").stderr_to(tether::Stdio::Capture));
    tether::Child steady = host.spawn(tether::Script(dir + "/steady.py"));
    std::thread other([&] {
        for (int n = 1; n <= 3; n++) {
            std::int64_t r = steady.call<std::int64_t>("work", n);
            std::lock_guard<std::mutex> lock(out);
            std::cout << "steady.py: work(" << n << ") = " << r << std::endl;
        }
    });
    for (int n = 1; n <= 3; n++) {
        try {
            std::int64_t r = crashing.call<std::int64_t>("work", n);
            std::lock_guard<std::mutex> lock(out);
            std::cout << "crashing.py: work(" << n << ") = " << r << std::endl;
        } catch (const tether::Error &e) {
            std::lock_guard<std::mutex> lock(out);
            std::cout << "crashing.py: work(" << n << ") failed: " << e.kind() << std::endl;
            break;
        }
    }
    other.join();
    tether::Report crashed = crashing.end();
    std::cout << "crashing.py ended by signal " << crashed.signal() << ": " << crashed.check() << std::endl;
    // The host goes on: the other plugin still answers.
    std::int64_t still = steady.call<std::int64_t>("work", 7);
    std::cout << "steady.py still answers: " << still << std::endl;
    tether::Report fine = steady.end(2000);
    std::cout << "steady.py ended with code " << fine.exit_code() << std::endl;
    return 0;
}
