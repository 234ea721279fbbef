// tether.hpp from a C++17 host: typed host functions (integers, strings,
// bytes, bool, double, JSON, void), exceptions both ways, a nested call, a
// report, misuse. Prints one line per check; tests/c_examples.rs reads them.
#include <iostream>
#include <numeric>
#include <string>

#include "tether.hpp"

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    tether::Host host;
    host.function("add(a, b)", [](std::int64_t a, std::int64_t b) { return a + b; })
        .function("concat(a, b)", [](std::string_view a, const std::string &b) { return std::string(a) + b; })
        .function("total(data)", [](const tether::Bytes &data) {
            return std::accumulate(data.begin(), data.end(), std::int64_t{0});
        })
        .function("negate(b)", [](bool b) { return !b; })
        .function("half(x)", [](double x) { return x / 2; })
        .function("echo(value)", [](const tether::Json &value) { return value; })
        .function("reverse(data)", [](tether::Bytes data) { return tether::Bytes(data.rbegin(), data.rend()); })
        .function("nested(x)", [](const tether::Call &call, std::int64_t x) {
            return call.script<std::int64_t>("double", x);
        })
        .function("throws(what)", [](std::string_view what) -> int {
            throw std::runtime_error("C++ threw " + std::string(what));
        })
        .function("nothing()", [] {});
    tether::Child child = host.spawn(tether::Script(argv[1]));
    std::cout << "types: " << child.call<tether::Json>("types").text << std::endl;
    std::cout << "double: " << child.call<std::int64_t>("double", 21) << std::endl;
    std::cout << "bytes: " << child.call<tether::Json>("double", tether::Bytes{1, 2}).text << std::endl;
    try {
        child.call("fail");
    } catch (const tether::Error &e) {
        std::cout << "script error: " << e.kind() << ": " << e.what() << std::endl;
    }
    try {
        child.call<std::string>("double", 2);
    } catch (const tether::Error &e) {
        std::cout << "wrong result type: " << e.kind() << std::endl;
    }
    tether::Report report = child.end(2000);
    std::cout << "ended: code " << report.exit_code() << ", calls " << report.calls() << std::endl;
    try {
        child.call("double", 1);
    } catch (const tether::Error &e) {
        std::cout << "misuse: " << e.kind() << std::endl;
    }
    try {
        tether::Host bad;
        bad.function("broken(a,", [](std::int64_t a) { return a; });
    } catch (const tether::Error &e) {
        std::cout << "bad signature: " << e.kind() << std::endl;
    }
    tether::Pool pool(host, tether::Script(argv[1]), 2);
    std::int64_t sum = 0;
    for (int i = 0; i < 10; i++) sum += pool.call<std::int64_t>("double", i);
    std::cout << "pool: " << sum << ", calls " << pool.stats().calls << std::endl;
    pool.shutdown(2000);
    return 0;
}
