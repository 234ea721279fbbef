/* tether.hpp: a C++17 face over tether's C ABI (tether.h). Header-only.
 *
 *   tether::Host host;
 *   host.function("add(a, b)", [](int64_t a, int64_t b) { return a + b; });
 *   tether::Child child = host.spawn(tether::Script("plugin.py").arg("--fast"));
 *   int64_t n = child.call<int64_t>("square", 7);
 *   tether::Report report = child.end(2000);
 *
 * RAII types own the C handles (move-only); every failure throws
 * tether::Error, which carries the C result code (kind()) and the message.
 * Host functions are lambdas: their parameters (int64_t and other integers,
 * double, bool, std::string, std::string_view, std::vector<uint8_t> as bytes,
 * tether::Json for anything else) are read from the script's arguments, and
 * their result (the same types, or void) is its answer; an exception thrown
 * in one reaches the script as an error (tether::Error's kind, or
 * "RuntimeError" with what()). A host function runs on one of tether's
 * threads, several at once unless the host is serial; see docs/c-api.md.
 */
#ifndef TETHER_HPP
#define TETHER_HPP

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "tether.h"

namespace tether {

/* A failed call: the C result code and the message of tether_last_error. */
class Error : public std::runtime_error {
  public:
    Error(tether_result code, const std::string &message) : std::runtime_error(message), code_(code) {}
    /* The result code (TETHER_RESULT_REMOTE for an error the script raised, ...). */
    tether_result code() const noexcept { return code_; }
    /* The code's name, "TETHER_RESULT_REMOTE". */
    const char *kind() const noexcept { return tether_result_name(code_); }

  private:
    tether_result code_;
};

/* JSON text, passed and returned as it is. */
struct Json {
    std::string text;
};

/* Bytes, as the script sees them (Python's bytes). */
using Bytes = std::vector<std::uint8_t>;

namespace detail {

inline std::string last_error() {
    size_t len = tether_last_error(nullptr, 0);
    std::string message(len, '\0');
    if (len > 0) tether_last_error(message.data(), len + 1);
    return message;
}

inline void check(tether_result r) {
    if (r != TETHER_RESULT_OK) throw Error(r, last_error());
}

inline void escape(std::string &out, std::string_view s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    out += '"';
}

/* Arguments on their way to the script: wire JSON plus the attachment area
 * that bytes values point into. */
struct Wire {
    std::string json;
    Bytes area;

    void add(bool b) { json += b ? "true" : "false"; }
    void add(double x) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", x);
        json += buf;
    }
    void add(std::string_view s) { escape(json, s); }
    void add(const std::string &s) { escape(json, s); }
    void add(const char *s) { escape(json, s); }
    void add(const Bytes &b) {
        json += "{\"$bytes\":[" + std::to_string(area.size()) + "," + std::to_string(b.size()) + "]}";
        area.insert(area.end(), b.begin(), b.end());
    }
    void add(const Json &j) { json += j.text; }
    template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
    void add(T n) {
        json += std::to_string(n);
    }

    template <class... A> static Wire list(const A &...args) {
        Wire w;
        w.json = "[";
        bool first = true;
        ((w.json += first ? "" : ",", first = false, w.add(args)), ...);
        w.json += "]";
        return w;
    }
};

/* Reads the JSON string at the start of `s` (a quote), unescaping it. */
inline std::string unquote(std::string_view s) {
    if (s.empty() || s[0] != '"') throw Error(TETHER_RESULT_VALUE, "not a string: " + std::string(s));
    std::string out;
    for (size_t i = 1; i < s.size(); i++) {
        char c = s[i];
        if (c == '"') return out;
        if (c != '\\') {
            out += c;
            continue;
        }
        if (++i >= s.size()) break;
        switch (s[i]) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
            if (i + 4 >= s.size()) break;
            unsigned long cp = std::strtoul(std::string(s.substr(i + 1, 4)).c_str(), nullptr, 16);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < s.size() && s[i + 1] == '\\' && s[i + 2] == 'u') {
                unsigned long low = std::strtoul(std::string(s.substr(i + 3, 4)).c_str(), nullptr, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                i += 6;
            }
            if (cp < 0x80) {
                out += static_cast<char>(cp);
            } else if (cp < 0x800) {
                out += static_cast<char>(0xC0 | (cp >> 6));
                out += static_cast<char>(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                out += static_cast<char>(0xE0 | (cp >> 12));
                out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                out += static_cast<char>(0x80 | (cp & 0x3F));
            } else {
                out += static_cast<char>(0xF0 | (cp >> 18));
                out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
                out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                out += static_cast<char>(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: out += s[i];
        }
    }
    throw Error(TETHER_RESULT_VALUE, "an unterminated string");
}

/* A result from wire JSON and its attachments, as T. */
template <class T> T decode(std::string_view json, const std::uint8_t *area, size_t area_len) {
    std::string text(json);
    if constexpr (std::is_same_v<T, void>) {
        return;
    } else if constexpr (std::is_same_v<T, Json>) {
        return Json{text};
    } else if constexpr (std::is_same_v<T, bool>) {
        if (text == "true") return true;
        if (text == "false") return false;
        throw Error(TETHER_RESULT_VALUE, "not a bool: " + text);
    } else if constexpr (std::is_integral_v<T>) {
        char *end = nullptr;
        long long n = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0') throw Error(TETHER_RESULT_VALUE, "not an integer: " + text);
        return static_cast<T>(n);
    } else if constexpr (std::is_floating_point_v<T>) {
        char *end = nullptr;
        double x = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0') throw Error(TETHER_RESULT_VALUE, "not a number: " + text);
        return static_cast<T>(x);
    } else if constexpr (std::is_same_v<T, std::string>) {
        return unquote(text);
    } else if constexpr (std::is_same_v<T, Bytes>) {
        unsigned long long off = 0, len = 0;
        if (std::sscanf(text.c_str(), "{\"$bytes\":[%llu,%llu]}", &off, &len) != 2 || off + len > area_len)
            throw Error(TETHER_RESULT_VALUE, "not bytes: " + text);
        return Bytes(area + off, area + off + len);
    } else {
        static_assert(sizeof(T) == 0, "tether.hpp: results are integers, double, bool, std::string, Bytes or Json");
    }
}

template <class T> T take(tether_value *value) {
    std::unique_ptr<tether_value, void (*)(tether_value *)> owned(value, tether_value_free);
    const char *json;
    size_t len;
    const std::uint8_t *area;
    size_t area_len;
    check(tether_value_json(value, &json, &len));
    check(tether_value_attachments(value, &area, &area_len));
    return decode<T>(std::string_view(json, len), area, area_len);
}

template <class F> struct traits : traits<decltype(&F::operator())> {};
template <class C, class R, class... A> struct traits<R (C::*)(A...) const> {
    using result = R;
    using args = std::tuple<std::decay_t<A>...>;
};
template <class C, class R, class... A> struct traits<R (C::*)(A...)> : traits<R (C::*)(A...) const> {};
template <class R, class... A> struct traits<R (*)(A...)> {
    using result = R;
    using args = std::tuple<std::decay_t<A>...>;
};

} // namespace detail

/* One call from the script, valid during the host function only. */
class Call {
  public:
    explicit Call(const tether_call *call) : call_(call) {}
    size_t size() const { return tether_call_arg_count(call_); }
    std::int64_t int_at(size_t i) const {
        std::int64_t n;
        detail::check(tether_call_arg_int(call_, i, &n));
        return n;
    }
    double double_at(size_t i) const {
        double x;
        detail::check(tether_call_arg_double(call_, i, &x));
        return x;
    }
    std::string_view string_at(size_t i) const {
        const char *text;
        size_t len;
        detail::check(tether_call_arg_string(call_, i, &text, &len));
        return std::string_view(text, len);
    }
    Bytes bytes_at(size_t i) const {
        const std::uint8_t *data;
        size_t len;
        detail::check(tether_call_arg_bytes(call_, i, &data, &len));
        return Bytes(data, data + len);
    }
    /* All arguments as wire JSON (a JSON array). */
    std::string_view json() const {
        const char *json;
        size_t len;
        detail::check(tether_call_args_json(call_, &json, &len));
        return std::string_view(json, len);
    }
    /* Calls export `name` of the script that made this call (a nested call). */
    template <class R = Json, class... A> R script(const char *name, const A &...args) const {
        detail::Wire wire = detail::Wire::list(args...);
        if (!wire.area.empty())
            throw Error(TETHER_RESULT_INVALID_ARGUMENT, "bytes arguments are not supported in nested calls");
        tether_value *value;
        detail::check(tether_call_script(call_, name, wire.json.data(), wire.json.size(), 0, &value));
        return detail::take<R>(value);
    }

    template <class T> T get(size_t i) const {
        if constexpr (std::is_same_v<T, bool>) {
            return detail::decode<bool>(arg_json(i), nullptr, 0);
        } else if constexpr (std::is_integral_v<T>) {
            return static_cast<T>(int_at(i));
        } else if constexpr (std::is_floating_point_v<T>) {
            return static_cast<T>(double_at(i));
        } else if constexpr (std::is_same_v<T, std::string>) {
            return std::string(string_at(i));
        } else if constexpr (std::is_same_v<T, std::string_view>) {
            return string_at(i);
        } else if constexpr (std::is_same_v<T, Bytes>) {
            return bytes_at(i);
        } else if constexpr (std::is_same_v<T, Json>) {
            return Json{std::string(arg_json(i))};
        } else if constexpr (std::is_same_v<T, Call>) {
            return *this;
        } else {
            static_assert(sizeof(T) == 0, "tether.hpp: parameters are integers, double, bool, strings, Bytes or Json");
        }
    }

  private:
    /* The JSON text of argument i (a top-level element of the array). */
    std::string_view arg_json(size_t i) const {
        std::string_view all = json();
        size_t depth = 0, index = 0, start = 1;
        bool in_string = false;
        for (size_t k = 1; k < all.size(); k++) {
            char c = all[k];
            if (in_string) {
                if (c == '\\') k++;
                else if (c == '"') in_string = false;
                continue;
            }
            if (c == '"') in_string = true;
            else if (c == '[' || c == '{') depth++;
            else if ((c == ']' || c == '}') && depth > 0) depth--;
            else if ((c == ',' || c == ']') && depth == 0) {
                if (index == i) return all.substr(start, k - start);
                index++;
                start = k + 1;
            }
        }
        throw Error(TETHER_RESULT_INVALID_ARGUMENT, "argument " + std::to_string(i) + " does not exist");
    }
    const tether_call *call_;
};

namespace detail {

inline void answer(tether_reply *reply, bool b) { tether_reply_json(reply, b ? "true" : "false", b ? 4 : 5); }
inline void answer(tether_reply *reply, double x) { tether_reply_double(reply, x); }
inline void answer(tether_reply *reply, std::string_view s) { tether_reply_string(reply, s.data(), s.size()); }
inline void answer(tether_reply *reply, const std::string &s) { tether_reply_string(reply, s.data(), s.size()); }
inline void answer(tether_reply *reply, const char *s) { tether_reply_string(reply, s, std::strlen(s)); }
inline void answer(tether_reply *reply, const Bytes &b) { tether_reply_bytes(reply, b.data(), b.size()); }
inline void answer(tether_reply *reply, const Json &j) { tether_reply_json(reply, j.text.data(), j.text.size()); }
template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
void answer(tether_reply *reply, T n) {
    tether_reply_int(reply, static_cast<std::int64_t>(n));
}

/* A registered C++ function behind the C callback. */
struct Function {
    std::function<void(const tether_call *, tether_reply *)> run;
};

extern "C" inline void trampoline(void *user_data, const tether_call *call, tether_reply *reply) {
    auto *f = static_cast<Function *>(user_data);
    try {
        f->run(call, reply);
    } catch (const Error &e) {
        const char *kind = e.code() == TETHER_RESULT_INVALID_ARGUMENT ? "TypeError" : e.kind();
        tether_reply_error(reply, kind, e.what());
    } catch (const std::exception &e) {
        tether_reply_error(reply, "RuntimeError", e.what());
    } catch (...) {
        tether_reply_error(reply, "RuntimeError", "a C++ exception that is not a std::exception");
    }
}

extern "C" inline void free_function(void *user_data) { delete static_cast<Function *>(user_data); }

/* Which of the script's arguments each parameter reads: a tether::Call
 * parameter takes the whole call and no argument. */
template <class... A> constexpr std::array<size_t, sizeof...(A)> arg_indices() {
    std::array<size_t, sizeof...(A)> indices{};
    size_t next = 0, i = 0;
    ((indices[i++] = std::is_same_v<A, Call> ? 0 : next++), ...);
    return indices;
}

template <class F, class... A, size_t... I>
void invoke(F &f, const Call &call, tether_reply *reply, std::tuple<A...> *, std::index_sequence<I...>) {
    constexpr auto at = arg_indices<A...>();
    (void)at;
    using R = decltype(f(call.get<A>(at[I])...));
    if constexpr (std::is_void_v<R>) {
        f(call.get<A>(at[I])...);
    } else {
        answer(reply, f(call.get<A>(at[I])...));
    }
}

extern "C" inline void line_trampoline(void *user_data, const char *line, size_t len) {
    try {
        (*static_cast<std::function<void(std::string_view)> *>(user_data))(std::string_view(line, len));
    } catch (...) {
    }
}
extern "C" inline void free_line(void *user_data) { delete static_cast<std::function<void(std::string_view)> *>(user_data); }

struct LogFunction {
    std::function<void(std::uint32_t, std::int64_t, std::string_view, std::string_view)> run;
};
extern "C" inline void log_trampoline(void *user_data, std::uint32_t pid, std::int64_t level, const char *logger,
                                      const char *message) {
    try {
        static_cast<LogFunction *>(user_data)->run(pid, level, logger, message);
    } catch (...) {
    }
}
extern "C" inline void free_log(void *user_data) { delete static_cast<LogFunction *>(user_data); }

template <class T, void (*Free)(T *)> struct Owned {
    T *ptr = nullptr;
    Owned() = default;
    explicit Owned(T *p) : ptr(p) {}
    Owned(Owned &&o) noexcept : ptr(std::exchange(o.ptr, nullptr)) {}
    Owned &operator=(Owned &&o) noexcept {
        if (this != &o) {
            reset();
            ptr = std::exchange(o.ptr, nullptr);
        }
        return *this;
    }
    Owned(const Owned &) = delete;
    Owned &operator=(const Owned &) = delete;
    ~Owned() { reset(); }
    void reset() {
        if (ptr) Free(ptr);
        ptr = nullptr;
    }
};

} // namespace detail

enum class Stdio { Inherit = TETHER_STDIO_INHERIT, Null = TETHER_STDIO_NULL, Capture = TETHER_STDIO_CAPTURE };

/* A sandbox policy (see docs/guarantees.md). */
class Sandbox {
  public:
    Sandbox() { detail::check(tether_sandbox_new(&s_.ptr)); }
    Sandbox &read_only(const std::string &path) { return done(tether_sandbox_add_read_only(s_.ptr, path.c_str())); }
    Sandbox &read_write(const std::string &path) { return done(tether_sandbox_add_read_write(s_.ptr, path.c_str())); }
    Sandbox &connect_tcp(std::uint16_t port) { return done(tether_sandbox_allow_connect(s_.ptr, port)); }
    Sandbox &bind_tcp(std::uint16_t port) { return done(tether_sandbox_allow_bind(s_.ptr, port)); }
    Sandbox &memory(std::uint64_t bytes) { return done(tether_sandbox_set_memory(s_.ptr, bytes)); }
    Sandbox &cpu_seconds(std::uint32_t s) { return done(tether_sandbox_set_cpu_seconds(s_.ptr, s)); }
    Sandbox &max_processes(std::uint64_t n) { return done(tether_sandbox_set_max_processes(s_.ptr, n)); }
    Sandbox &best_effort() { return done(tether_sandbox_set_best_effort(s_.ptr)); }
    const tether_sandbox *get() const { return s_.ptr; }

  private:
    Sandbox &done(tether_result r) {
        detail::check(r);
        return *this;
    }
    detail::Owned<tether_sandbox, tether_sandbox_free> s_;
};

/* Which script to run, and how. */
class Script {
  public:
    explicit Script(const std::string &path) { detail::check(tether_script_new(path.c_str(), &s_.ptr)); }
    Script &arg(const std::string &a) { return done(tether_script_add_arg(s_.ptr, a.c_str())); }
    Script &env(const std::string &k, const std::string &v) { return done(tether_script_set_env(s_.ptr, k.c_str(), v.c_str())); }
    Script &env_remove(const std::string &k) { return done(tether_script_remove_env(s_.ptr, k.c_str())); }
    Script &cwd(const std::string &dir) { return done(tether_script_set_cwd(s_.ptr, dir.c_str())); }
    Script &venv(const std::string &dir) { return done(tether_script_set_venv(s_.ptr, dir.c_str())); }
    Script &stdout_to(Stdio mode) { return done(tether_script_set_stdout(s_.ptr, static_cast<tether_stdio>(mode))); }
    Script &stderr_to(Stdio mode) { return done(tether_script_set_stderr(s_.ptr, static_cast<tether_stdio>(mode))); }
    Script &sandbox(const Sandbox &policy) { return done(tether_script_set_sandbox(s_.ptr, policy.get())); }
    /* Each line of the script's stdout (stderr) to `f`, on a thread of tether's. */
    Script &on_stdout_line(std::function<void(std::string_view)> f) { return lines(std::move(f), true); }
    Script &on_stderr_line(std::function<void(std::string_view)> f) { return lines(std::move(f), false); }
    const tether_script *get() const { return s_.ptr; }

  private:
    Script &lines(std::function<void(std::string_view)> f, bool out) {
        auto *boxed = new std::function<void(std::string_view)>(std::move(f));
        tether_result r = out ? tether_script_on_stdout_line(s_.ptr, detail::line_trampoline, boxed, detail::free_line)
                              : tether_script_on_stderr_line(s_.ptr, detail::line_trampoline, boxed, detail::free_line);
        return done(r);
    }
    Script &done(tether_result r) {
        detail::check(r);
        return *this;
    }
    detail::Owned<tether_script, tether_script_free> s_;
};

/* How a script ended. */
class Report {
  public:
    explicit Report(tether_report *r) : r_(r) {}
    int exit_code() const { return tether_report_exit_code(r_.ptr); }
    int signal() const { return tether_report_signal(r_.ptr); }
    bool success() const { return exit_code() == 0; }
    std::uint64_t calls() const { return tether_report_calls(r_.ptr); }
    /* What `Outcome::check` says: empty on success, else how it ended and why. */
    std::string check() const { return tether_report_check(r_.ptr); }
    std::optional<std::string> killed_by() const { return opt(tether_report_killed_by(r_.ptr)); }
    std::optional<std::string> limit() const { return opt(tether_report_limit(r_.ptr)); }
    std::optional<std::string_view> stdout_text() const { return stream(true); }
    std::optional<std::string_view> stderr_text() const { return stream(false); }

  private:
    static std::optional<std::string> opt(const char *s) { return s ? std::optional<std::string>(s) : std::nullopt; }
    std::optional<std::string_view> stream(bool out) const {
        const std::uint8_t *data;
        size_t len;
        tether_result r = out ? tether_report_stdout(r_.ptr, &data, &len) : tether_report_stderr(r_.ptr, &data, &len);
        if (r != TETHER_RESULT_OK) return std::nullopt;
        return std::string_view(reinterpret_cast<const char *>(data), len);
    }
    detail::Owned<tether_report, tether_report_free> r_;
};

/* A running script. Destroying it kills the script if it still runs. */
class Child {
  public:
    explicit Child(tether_child *c) : c_(c) {}
    template <class R = Json, class... A> R call(const char *name, const A &...args) {
        return call_timeout<R>(0, name, args...);
    }
    template <class R = Json, class... A> R call_timeout(std::uint32_t timeout_ms, const char *name, const A &...args) {
        detail::Wire wire = detail::Wire::list(args...);
        tether_value *value;
        detail::check(tether_child_call_wire(c_.ptr, name, wire.json.data(), wire.json.size(), wire.area.data(),
                                             wire.area.size(), timeout_ms, &value));
        return detail::take<R>(value);
    }
    template <class... A> void notify(const char *name, const A &...args) {
        detail::Wire wire = detail::Wire::list(args...);
        detail::check(tether_child_notify(c_.ptr, name, wire.json.data(), wire.json.size()));
    }
    std::uint32_t pid() {
        std::uint32_t pid;
        detail::check(tether_child_pid(c_.ptr, &pid));
        return pid;
    }
    bool finished() {
        bool done;
        detail::check(tether_child_is_finished(c_.ptr, &done));
        return done;
    }
    void kill() { detail::check(tether_child_kill(c_.ptr)); }
    /* Waits for the script (grace_ms 0), or stops it within grace_ms; how it ended. */
    Report end(std::uint32_t grace_ms = 0) {
        tether_report *report;
        detail::check(tether_child_end(c_.ptr, grace_ms, &report));
        return Report(report);
    }

  private:
    detail::Owned<tether_child, tether_child_free> c_;
};

/* The functions scripts may call, and how they run. One host serves any
 * number of scripts at once. */
class Host {
  public:
    Host() { detail::check(tether_host_new(&h_.ptr)); }
    Host &python(const std::string &path) { return done(tether_host_set_python(h_.ptr, path.c_str())); }
    Host &classic() { return done(tether_host_set_classic(h_.ptr, true)); }
    Host &serial() { return done(tether_host_set_serial(h_.ptr)); }
    Host &shared_memory(size_t threshold) { return done(tether_host_set_shared_memory(h_.ptr, threshold)); }
    Host &deadline_ms(std::uint32_t ms) { return done(tether_host_set_deadline_ms(h_.ptr, ms)); }
    Host &idle_timeout_ms(std::uint32_t ms) { return done(tether_host_set_idle_timeout_ms(h_.ptr, ms)); }
    Host &sandbox(const Sandbox &policy) { return done(tether_host_set_sandbox(h_.ptr, policy.get())); }
    Host &doc(const std::string &text) { return done(tether_host_set_doc(h_.ptr, text.c_str())); }
    /* Forwarded `logging` records: f(pid, level, logger, message). */
    Host &on_log(std::function<void(std::uint32_t, std::int64_t, std::string_view, std::string_view)> f) {
        auto *boxed = new detail::LogFunction{std::move(f)};
        return done(tether_host_set_forward_logs(h_.ptr, detail::log_trampoline, boxed, detail::free_log));
    }

    /* Registers `f` under `signature` ("add(a, b)"): its parameters are read
     * from the arguments by position (a parameter of type tether::Call gets
     * the whole call), its result is the answer. */
    template <class F> Host &function(const std::string &signature, F f) {
        using Args = typename detail::traits<F>::args;
        auto *boxed = new detail::Function{[f](const tether_call *c, tether_reply *reply) mutable {
            Call call(c);
            detail::invoke(f, call, reply, static_cast<Args *>(nullptr),
                           std::make_index_sequence<std::tuple_size_v<Args>>{});
        }};
        return done(tether_host_add_function_owned(h_.ptr, signature.c_str(), detail::trampoline, boxed,
                                                   detail::free_function));
    }

    Child spawn(const Script &script) const {
        tether_child *child;
        detail::check(tether_host_spawn(h_.ptr, script.get(), &child));
        return Child(child);
    }
    Report run(const Script &script) const { return spawn(script).end(); }
    void write_stubs(const std::string &dir) const { detail::check(tether_host_write_stubs(h_.ptr, dir.c_str())); }
    const tether_host *get() const { return h_.ptr; }

  private:
    Host &done(tether_result r) {
        detail::check(r);
        return *this;
    }
    detail::Owned<tether_host, tether_host_free> h_;
};

/* Workers of one script, supervised. */
class Pool {
  public:
    Pool(const Host &host, const Script &script, size_t workers) {
        detail::check(tether_pool_new(host.get(), script.get(), workers, &p_.ptr));
    }
    template <class R = Json, class... A> R call(const char *name, const A &...args) const {
        detail::Wire wire = detail::Wire::list(args...);
        tether_value *value;
        detail::check(tether_pool_call(p_.ptr, name, wire.json.data(), wire.json.size(), false, &value));
        return detail::take<R>(value);
    }
    tether_pool_stats stats() const {
        tether_pool_stats s;
        detail::check(tether_pool_get_stats(p_.ptr, &s));
        return s;
    }
    void shutdown(std::uint32_t grace_ms) const { detail::check(tether_pool_shutdown(p_.ptr, grace_ms)); }

  private:
    detail::Owned<tether_pool, tether_pool_free> p_;
};

} // namespace tether

#endif /* TETHER_HPP */
