#include "agent/cli/slo_status.h"

#include <curl/curl.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <vector>

#include "agent/cli/commands.h"
#include "agent/core/fd.h"
#include "agent/core/format.h"

namespace syncscope::cli {
namespace {

using CurlHandle = CHandle<CURL, curl_easy_cleanup>;

struct SloStatusArgs {
  std::string agent = "127.0.0.1:9479";
  bool json = false;
  double timeout_s = 5;
};

size_t append_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

Result<std::string> http_get(const std::string& url, double timeout_s) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CurlHandle curl(curl_easy_init());
  if (!curl) return fail(fmt::format("GET {}: curl_easy_init failed", url));
  std::string body;
  char error[CURL_ERROR_SIZE] = {};
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_s * 1000));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "syncscope");
  CURLcode code = curl_easy_perform(h);
  if (code != CURLE_OK) return fail(fmt::format("GET {}: {}", url, error[0] ? error : curl_easy_strerror(code)));
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) return fail(fmt::format("GET {}: HTTP {}", url, status));
  return body;
}

// Text columns, left-aligned, two spaces apart.
std::string render_table(const std::vector<std::vector<std::string>>& rows,
                         const std::vector<std::string>& notes /* per row, printed under it; may be empty */) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  std::string out;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (size_t i = 0; i < rows[r].size(); ++i) {
      line += rows[r][i];
      if (i + 1 < rows[r].size()) line += std::string(width[i] - rows[r][i].size() + 2, ' ');
    }
    out += line + "\n";
    if (r < notes.size() && !notes[r].empty()) out += notes[r];
  }
  return out;
}

std::string number(double value, int decimals) {
  std::string text = fmt::format("{:.{}f}", value, decimals);
  return text == "-0.00" || text == "-0.0" ? text.substr(1) : text;
}

std::string str(const nlohmann::ordered_json& j, const char* key, std::string fallback = "-") {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

// "2027-01-15T08:00:05.000Z" → "08:00:05Z": the date is today's for a circuit.
std::string clock_time(const std::string& rfc3339) {
  auto t = rfc3339.find('T');
  if (t == std::string::npos || rfc3339.size() < t + 9) return rfc3339;
  return rfc3339.substr(t + 1, 8) + "Z";
}

int run_slo_status(const SloStatusArgs& args) {
  auto url = slo_status_url(args.agent);
  if (!url) {
    std::fprintf(stderr, "syncscope slo status: %s\n", url.error().message().c_str());
    return kExitUsage;
  }
  auto body = http_get(*url, args.timeout_s);
  if (!body) {
    std::fprintf(stderr, "syncscope slo status: %s (is `syncscope agent` running and listening on %s?)\n",
                 body.error().message().c_str(), args.agent.c_str());
    return kExitFailure;
  }
  nlohmann::ordered_json status;  // keeps the agent's order: burn-rate windows shortest first
  try {
    status = nlohmann::ordered_json::parse(*body);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "syncscope slo status: %s did not return JSON: %s\n", url->c_str(), e.what());
    return kExitFailure;
  }
  if (args.json) std::printf("%s\n", status.dump(2).c_str());
  else std::fputs(render_slo_status(status).c_str(), stdout);
  return kExitOk;
}

}  // namespace

Result<std::string> slo_status_url(std::string_view agent) {
  std::string base(agent);
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.empty()) return fail("--agent: empty address");
  if (base.starts_with("http://") || base.starts_with("https://")) {
    // A URL: keep scheme, host and port; the path is ours.
    const size_t host_start = base.find("//") + 2;
    const size_t path = base.find('/', host_start);
    if (path != std::string::npos) base.resize(path);
    return base + "/debug/slo";
  }
  const size_t colon = base.rfind(':');
  if (colon == std::string::npos || colon + 1 == base.size() ||
      !std::all_of(base.begin() + static_cast<ptrdiff_t>(colon) + 1, base.end(), ::isdigit))
    return fail(fmt::format("--agent {}: expected HOST:PORT (e.g. 127.0.0.1:9479) or an http:// URL", base));
  return "http://" + base + "/debug/slo";
}

std::string render_slo_status(const nlohmann::ordered_json& status) {
  using Json = nlohmann::ordered_json;
  const Json slos = status.value("slos", Json::array());
  std::string out;
  if (slos.empty()) {
    out += "no SLOs configured\n";
  } else {
    std::vector<std::vector<std::string>> rows{
        {"SLO", "TARGET", "SLI", "OBJECTIVE", "WINDOW", "GOOD", "BAD", "BUDGET LEFT", "BURN RATES", "ALERT",
         "CIRCUIT"}};
    std::vector<std::string> notes{""};
    for (const Json& slo : slos) {
      std::string rates;
      const Json burn_rates = slo.value("burn_rates", Json::object());
      for (const auto& [window, rate] : burn_rates.items())
        rates += (rates.empty() ? "" : " ") + window + "=" + number(rate.get<double>(), 2);
      const Json alerts = slo.value("alerts", Json::object());
      std::string alert = alerts.value("page", false) ? "page" : alerts.value("ticket", false) ? "ticket" : "-";
      const Json circuit = slo.value("circuit", Json::object());
      std::string circuit_text = str(circuit, "state");
      if (auto until = circuit.find("open_until"); until != circuit.end() && until->is_string())
        circuit_text += " until " + clock_time(until->get<std::string>());
      if (circuit.value("sequence", 0) > 0) circuit_text += fmt::format(" (#{})", circuit.value("sequence", 0));
      const Json events = slo.value("events", Json::object());
      rows.push_back({str(slo, "name"), str(slo, "target"), str(slo, "sli"),
                      fmt::format("{}%", slo.value("objective", 0.0)),
                      str(slo, "window"), str(events, "good", "0"), str(events, "bad", "0"),
                      number(slo.value("error_budget_remaining", 0.0) * 100, 1) + "%", rates.empty() ? "-" : rates,
                      alert, circuit_text});
      std::string note;
      if (auto m = slo.find("measurement"); m != slo.end() && !m->value("measured", true))
        note = "  ! not measured: " + m->value("problem", std::string("unknown")) + "\n";
      notes.push_back(note);
    }
    out += render_table(rows, notes);
  }
  if (auto notifiers = status.find("notifiers"); notifiers != status.end() && !notifiers->empty()) {
    out += "\nnotifiers:";
    for (const auto& [name, n] : notifiers->items()) {
      out += fmt::format(" {} ({} {}{})", name, str(n, "type"), str(n, "url"),
                         n.value("disabled", false) ? ", DISABLED after 410" : "");
    }
    out += "\n";
  }
  if (status.contains("outbox_pending")) out += fmt::format("outbox: {} pending\n", str(status, "outbox_pending"));
  if (status.contains("evaluated_at")) out += fmt::format("evaluated at {}\n", str(status, "evaluated_at"));
  return out;
}

void register_slo_commands(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<SloStatusArgs>();
  CLI::App* slo = app.add_subcommand("slo", "SLOs, error budgets and circuit breakers of a running agent");
  slo->require_subcommand(1);
  CLI::App* status = slo->add_subcommand("status", "Budgets, burn rates and circuit states (from /debug/slo)");
  status->add_option("--agent", args->agent, "the agent's listen address, HOST:PORT or URL (default 127.0.0.1:9479)");
  status->add_flag("--json", args->json, "print /debug/slo as JSON");
  status->add_option("--timeout", args->timeout_s, "seconds to wait for the agent (default 5)")
      ->check(CLI::PositiveNumber);
  status->callback([args, &exit_code] { exit_code = run_slo_status(*args); });
}

}  // namespace syncscope::cli
