// A minimal HTTP endpoint for Prometheus: every request on ADDR gets the text exposition
// format (version 0.0.4) of `render()`. One thread, one connection at a time (a scraper's load).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "common/status.h"

namespace ts::serve {

class MetricsHttp {
 public:
  // addr: HOST:PORT (an IPv4 address, or localhost).
  static StatusOr<std::unique_ptr<MetricsHttp>> Start(const std::string& addr,
                                                      std::function<std::string()> render);
  ~MetricsHttp();
  int port() const { return port_; }

 private:
  MetricsHttp() = default;
  void Loop();
  int fd_ = -1;
  int port_ = 0;
  std::function<std::string()> render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ts::serve
