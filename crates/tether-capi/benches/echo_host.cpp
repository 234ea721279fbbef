// The C++ side of the c_abi bench: host.echo(i) served through tether.hpp.
//   echo_host SCRIPT   (the script writes its figure where TETHER_BENCH_OUT says)
#include <cstdint>
#include <iostream>

#include "tether.hpp"

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    try {
        tether::Host host;
        host.function("echo(value)", [](std::int64_t v) { return v; });
        return host.run(tether::Script(argv[1])).exit_code();
    } catch (const tether::Error &e) {
        std::cerr << e.kind() << ": " << e.what() << std::endl;
        return 1;
    }
}
