// The seed's C++ host ("Pipes for basic IPC between C/C++ and Python"),
// rebuilt on tether.hpp in native mode: foo and bar are lambdas with typed
// parameters and results, a bad argument is an error the script can catch,
// and how the script ended comes back as a report. (The seed's own protocol,
// byte for byte, is seed_host_classic.cpp.)
//
//   g++ -std=c++17 -I crates/tether-capi/include seed_host.cpp target/debug/libtether_c.a -lpthread -ldl -lm -o seed_host
//   ./seed_host [SCRIPT]     (default: seed_native.py beside this file)
#include <iostream>
#include <string>

#include "tether.hpp"

int main(int argc, char **argv) {
    std::string self(argv[0]);
    std::string path = argc > 1 ? argv[1] : self.substr(0, self.find_last_of('/') + 1) + "seed_native.py";
    try {
        tether::Host host;
        host.function("foo(arg)", [](std::int64_t arg) {
                std::cout << "apiName: foo" << std::endl << "apiArg:  " << arg << std::endl;
                return "Foo was called with arg " + std::to_string(arg);
            })
            .doc("The seed's foo: takes a number.")
            .function("bar(arg)", [](std::string_view arg) {
                std::cout << "apiName: bar" << std::endl << "apiArg:  " << arg << std::endl;
                return "Bar was called with arg " + std::string(arg);
            });
        tether::Report report = host.run(tether::Script(path));
        std::cout << "script ended with code " << report.exit_code() << " after " << report.calls() << " calls"
                  << std::endl;
        return report.exit_code();
    } catch (const tether::Error &e) {
        std::cout << "tether failed: " << e.kind() << ": " << e.what() << std::endl;
        return 1;
    }
}
