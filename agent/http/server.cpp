#include "agent/http/server.h"

#include <civetweb.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "agent/core/log.h"

namespace syncscope::http {
namespace {

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

void send(mg_connection* conn, const Response& response) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n",
            response.status, reason_phrase(response.status), response.content_type.c_str(),
            response.body.size());
  mg_write(conn, response.body.data(), response.body.size());
}

int log_civetweb(const mg_connection*, const char* message) {
  log::warn("http: {}", message);
  return 1;  // handled: civetweb does not print it again
}

}  // namespace

int Server::dispatch(mg_connection* conn, void* cbdata) {
  auto* server = static_cast<Server*>(cbdata);
  const mg_request_info* info = mg_get_request_info(conn);
  Request request;
  request.method = info->request_method ? info->request_method : "";
  request.path = info->local_uri ? info->local_uri : "/";
  request.query = info->query_string ? info->query_string : "";
  if (const char* accept = mg_get_header(conn, "Accept")) request.accept = accept;

  auto route = server->routes_.find(request.path);
  if (route == server->routes_.end()) {
    send(conn, Response{404, "text/plain; charset=utf-8", "not found; try /metrics, /healthz, /debug/probes\n"});
    return 200;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    send(conn, Response{405, "text/plain; charset=utf-8", "only GET\n"});
    return 405;
  }
  Response response;
  try {
    response = route->second(request);
  } catch (const std::exception& e) {
    log::error("http {}: handler failed: {}", request.path, e.what());
    response = Response{500, "text/plain; charset=utf-8", "internal error\n"};
  }
  if (request.method == "HEAD") response.body.clear();
  send(conn, response);
  return response.status;
}

Result<std::unique_ptr<Server>> Server::start(const config::ListenAddress& address,
                                              std::map<std::string, Handler> routes) {
  static std::once_flag init_once;
  std::call_once(init_once, [] { mg_init_library(0); });

  auto server = std::unique_ptr<Server>(new Server());
  server->routes_ = std::move(routes);
  std::string port = fmt::format("{}:{}", address.host == "localhost" ? "127.0.0.1" : address.host, address.port);
  const char* options[] = {
      "listening_ports", port.c_str(),
      "num_threads", "4",
      "request_timeout_ms", "10000",
      "enable_keep_alive", "no",
      nullptr, nullptr,
  };
  mg_callbacks callbacks{};
  callbacks.log_message = log_civetweb;
  char error_text[256] = {};
  unsigned error_code = 0;
  mg_error_data error{&error_code, error_text, sizeof error_text};
  mg_init_data init{&callbacks, server.get(), options};
  server->context_ = mg_start2(&init, &error);
  if (!server->context_)
    return fail(fmt::format("listen {}: {}", port, error_text[0] ? error_text : "cannot start HTTP server"));
  for (const auto& [path, handler] : server->routes_)
    mg_set_request_handler(server->context_, path.c_str(), &Server::dispatch, server.get());
  // A catch-all for 404s; exact routes above take precedence.
  mg_set_request_handler(server->context_, "/", &Server::dispatch, server.get());

  mg_server_port ports[4] = {};
  int n = mg_get_server_ports(server->context_, 4, ports);
  if (n > 0) server->port_ = static_cast<uint16_t>(ports[0].port);
  return server;
}

Server::~Server() {
  if (!context_) return;
  // civetweb's accept loop polls with a 2 s quantum, so mg_stop() alone can
  // take 2 s; SIGTERM must finish within one. Knocking on our own port wakes
  // the poll, and the loop then sees the stop flag. Knock until it is gone.
  std::atomic<bool> stopped{false};
  std::thread knocker([this, &stopped] {
    while (!stopped.load()) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port_);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      ::close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  mg_stop(context_);
  stopped = true;
  knocker.join();
}

}  // namespace syncscope::http
