// perf/peers/uws/server.cpp: the same chat broadcast as perf/peers/ws, on
// uWebSockets, the C++ library people pick when Node's ws is too slow. Every
// text message goes to every open client, the sender included, wrapped as
// {"type":"message","text":...,"ts":ms}. Built by perf/peers/uws/build.sh
// from a uWebSockets checkout (UWS_SRC); HOST and PORT from the environment.
#include "App.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

struct Client {};

// One topic everybody is subscribed to: uWS's pub/sub is how its own
// examples broadcast, and it shares one copy of a frame among subscribers.
constexpr std::string_view kRoom = "lobby";

void append_json_string(std::string &out, std::string_view text)
{
	static const char hex[] = "0123456789abcdef";

	out += '"';
	for (unsigned char c : text) {
		if (c == '"' || c == '\\') {
			out += '\\';
			out += static_cast<char>(c);
		} else if (c < 0x20) {
			out += "\\u00";
			out += hex[c >> 4];
			out += hex[c & 15];
		} else {
			out += static_cast<char>(c);
		}
	}
	out += '"';
}

std::string envelope(std::string_view text)
{
	long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(
			       std::chrono::system_clock::now().time_since_epoch())
			       .count();
	std::string out;

	out.reserve(text.size() + 64);
	out += R"({"type":"message","text":)";
	append_json_string(out, text);
	out += R"(,"ts":)";
	out += std::to_string(ms);
	out += '}';
	return out;
}

} // namespace

int main()
{
	const char *host = std::getenv("HOST") ? std::getenv("HOST") : "127.0.0.1";
	const char *port_env = std::getenv("PORT") ? std::getenv("PORT") : "8080";
	char *end = nullptr;
	long port = std::strtol(port_env, &end, 10);

	if (*port_env == '\0' || *end != '\0' || port < 0 || port > 65535) {
		std::fprintf(stderr, "uws peer: PORT must be 0..65535, not %s\n", port_env);
		return 2;
	}

	uWS::App app;
	app.ws<Client>("/*", {
		// Compression would measure zlib, not the broadcast.
		.compression = uWS::DISABLED,
		.maxPayloadLength = 64 * 1024,
		.idleTimeout = 120,
		// The ws peer and ringcast (--max-queue) hold 16 MiB per client
		// before giving up on it; so does this one.
		.maxBackpressure = 16 * 1024 * 1024,
		.closeOnBackpressureLimit = true,
		.open = [](auto *ws) { ws->subscribe(kRoom); },
		.message = [&app](auto *, std::string_view message, uWS::OpCode op) {
			if (op == uWS::OpCode::TEXT)
				app.publish(kRoom, envelope(message), uWS::OpCode::TEXT);
			else
				app.publish(kRoom, message, op);
		},
	});
	app.listen(host, static_cast<int>(port), [host, port](auto *listener) {
		if (!listener) {
			std::fprintf(stderr, "uws peer: cannot listen on %s:%ld\n", host, port);
			std::exit(1);
		}
		std::printf("uws peer listening on %s:%ld\n", host, port);
		std::fflush(stdout);
	});
	app.run();
	return 0;
}
