// The agent's HTTP endpoint (civetweb): /metrics, /healthz, /debug/*.
//
// Routes are plain functions from a Request to a Response, so handlers are
// testable without a socket; the server only moves bytes. It binds loopback by
// default and never serves files.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent/config/config.h"
#include "agent/core/result.h"

struct mg_context;
struct mg_connection;

namespace syncscope::http {

struct Request {
  std::string method;
  std::string path;
  std::string query;
  std::string accept;  // Accept header, for content negotiation
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using Handler = std::function<Response(const Request&)>;

class Server {
 public:
  // Binds and starts serving. Routes are fixed at start: adding one later is a
  // config change, which restarts the server.
  static Result<std::unique_ptr<Server>> start(const config::ListenAddress& address,
                                               std::map<std::string, Handler> routes);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }  // the bound port (useful with port 0 in tests)

 private:
  Server() = default;
  static int dispatch(mg_connection* conn, void* cbdata);

  mg_context* context_ = nullptr;
  std::map<std::string, Handler> routes_;
  uint16_t port_ = 0;
};

}  // namespace syncscope::http
